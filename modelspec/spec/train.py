"""The train section: network, epochs, optimizer, loss, device and the optional extras.

Optimizer and scheduler names map to a fixed table of torch classes (nothing is imported by a name
from the spec); their other keys are the class's keyword arguments, checked against its signature at
validate time, so `{name: adam, beta: 0.9}` fails before any training with "did you mean betas?".
Losses and metrics are typed classes (spec/losses.py, spec/metrics.py). The optimizer, the scheduler
and the loss are also built once at validate time on a dummy parameter, so no argument can pass
validation and then crash a run.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
from typing import Annotated, Any, ClassVar, Literal, Optional, Union

from pydantic import BeforeValidator, ConfigDict, Field, model_validator

from ..errors import did_you_mean
from ._forms import spec_error, tagged
from ._torch import nn, optim, torch
from .base import RESUME_SAFE, NonNegativeInt, PositiveInt, SpecModel
from .losses import LOSSES, CrossEntropy, Loss  # noqa: F401  (LOSSES: the table of names)
from .metrics import Metric

# A row key: a metric's key, or `loss`, on the training split (no prefix), `val_` or `test_`.
MonitorName = Annotated[str, Field(pattern=r"^(val_|test_)?[a-z][a-z0-9_]*$", max_length=100)]


class _TorchCall(SpecModel):
    """`{name: x, **kwargs}` where x picks a torch class and kwargs are checked against it."""

    model_config = ConfigDict(extra="allow", frozen=True)
    CLASSES: ClassVar[dict[str, str]] = {}  # class names in MODULE, imported when first used
    MODULE: ClassVar[str] = ""
    # Arguments the runner passes itself (the parameters, the optimizer), and ones it fills in.
    SUPPLIED: ClassVar[frozenset[str]] = frozenset({"params", "optimizer", "self"})
    FILLED: ClassVar[dict[str, frozenset[str]]] = {}

    name: str

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def torch_class(self) -> type:
        return getattr(importlib.import_module(self.MODULE), self.CLASSES[self.name])

    @model_validator(mode="after")
    def _check_signature(self):
        params = _parameters(self.torch_class)
        own = set(type(self).model_fields)
        accepted = [p for p in params if p not in self.SUPPLIED and p not in own]
        for key, value in self.kwargs.items():
            if key not in params or key in self.SUPPLIED:
                hint = did_you_mean(key, accepted) or "its arguments: " + ", ".join(accepted)
                raise spec_error(
                    f"{self.torch_class.__module__.split('.')[1]}.{self.torch_class.__name__} takes no "
                    f"argument '{key}'",
                    key=key,
                    hint=hint,
                )
            _check_type(key, value, params[key])
        filled = self.FILLED.get(self.name, frozenset())
        for key, param in params.items():
            if (
                param.default is inspect.Parameter.empty
                and param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY)
                and key not in self.SUPPLIED | filled | own
                and key not in self.kwargs
            ):
                raise spec_error(
                    f"{self.torch_class.__name__} needs '{key}'", hint=f"add `{key}: ...` next to name"
                )
        return self


@functools.cache
def _parameters(cls: type) -> dict[str, inspect.Parameter]:
    """The signature of a torch class; cached, as a grid validates the train section once per run."""
    return dict(inspect.signature(cls).parameters)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_type(key: str, value: Any, param: inspect.Parameter) -> None:
    """A shallow check by the annotation (where it is a plain `int` / `float`) or else the default's
    type: catches `lr: fast`, `nesterov: 3` and `step_size: 1.5` before any training."""
    annotation = param.annotation if isinstance(param.annotation, str) else getattr(param.annotation, "__name__", "")
    default = param.default
    expected, ok = None, True
    if annotation == "int":
        expected, ok = "an integer", isinstance(value, int) and not isinstance(value, bool)
    elif annotation == "float":
        expected, ok = "a finite number", _is_number(value)
    elif default is inspect.Parameter.empty or default is None:
        return
    elif isinstance(default, bool):
        expected, ok = "true or false", isinstance(value, bool)
    elif isinstance(default, (int, float)):
        expected, ok = "a finite number", _is_number(value)
    elif isinstance(default, tuple):
        expected = f"a list of {len(default)} numbers"
        ok = isinstance(value, list) and len(value) == len(default) and all(map(_is_number, value))
    elif isinstance(default, str):
        expected, ok = "a string", isinstance(value, str)
    if not ok:
        raise spec_error(f"expected {expected}; received {value!r}"[:200], key=key)


# The names of the classes in torch.optim and torch.optim.lr_scheduler, by the spec's names.
OPTIMIZERS = {
    "sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop",
    "adagrad": "Adagrad", "adadelta": "Adadelta", "nadam": "NAdam", "radam": "RAdam",
}
SCHEDULERS = {
    "step": "StepLR", "multistep": "MultiStepLR",
    "exponential": "ExponentialLR", "cosine": "CosineAnnealingLR",
    "onecycle": "OneCycleLR", "plateau": "ReduceLROnPlateau",
}


class OptimizerSpec(_TorchCall):
    """The optimizer, a torch.optim class by name (sgd, adam, adamw, rmsprop, adagrad, adadelta, nadam,
    radam); its other keys are the class's keyword arguments (momentum, weight_decay, betas, ...), checked
    against its signature."""

    CLASSES: ClassVar[dict[str, str]] = OPTIMIZERS
    MODULE: ClassVar[str] = "torch.optim"
    name: Literal[tuple(OPTIMIZERS)] = "adam"  # type: ignore[valid-type]
    """The optimizer: `adam` (the default), `sgd`, `adamw`, `rmsprop`, `adagrad`, `adadelta`, `nadam` or
    `radam`."""
    lr: float = Field(1e-3, gt=0)
    """The learning rate, positive (default 1e-3); a scheduler changes it from there."""

    def build(self, parameters) -> optim.Optimizer:
        return self.torch_class(parameters, lr=self.lr, **self.kwargs)


class SchedulerSpec(_TorchCall):
    """A learning-rate scheduler, a torch.optim.lr_scheduler class by name (step, multistep, exponential,
    cosine, onecycle, plateau); its other keys are the class's keyword arguments. cosine's T_max and
    onecycle's max_lr and length default from the train section."""

    CLASSES: ClassVar[dict[str, str]] = SCHEDULERS
    MODULE: ClassVar[str] = "torch.optim.lr_scheduler"
    # The runner fills these from the train section: cosine's horizon is the epochs, one-cycle's
    # peak is the optimizer's lr and its length the epochs × batches per epoch, plateau's mode the
    # monitored metric's direction.
    FILLED: ClassVar[dict[str, frozenset[str]]] = {
        "cosine": frozenset({"T_max"}),
        "onecycle": frozenset({"max_lr", "total_steps", "epochs", "steps_per_epoch"}),
    }
    name: Literal[tuple(SCHEDULERS)]  # type: ignore[valid-type]
    """The scheduler: `step`, `multistep`, `exponential`, `cosine`, `onecycle` (steps every batch) or
    `plateau` (steps on the monitored value)."""
    monitor: Optional[MonitorName] = None
    """plateau only: the metric it watches, e.g. `val_loss`; default train.monitor."""

    @property
    def per_batch(self) -> bool:
        """One-cycle steps after every batch; the others once per epoch."""
        return self.name == "onecycle"

    def build(self, optimizer, *, epochs: int, lr: float, steps_per_epoch: int, higher_is_better: bool = False):
        kwargs = self.kwargs
        if self.name == "cosine":
            kwargs.setdefault("T_max", epochs)
        elif self.name == "onecycle":
            kwargs.setdefault("max_lr", lr)
            if "total_steps" not in kwargs:
                kwargs.setdefault("epochs", epochs)
                kwargs.setdefault("steps_per_epoch", max(1, steps_per_epoch))
        elif self.name == "plateau":
            kwargs.setdefault("mode", "max" if higher_is_better else "min")
        return self.torch_class(optimizer, **kwargs)

    def step_epoch(self, scheduler, monitored: float | None) -> None:
        """The end-of-epoch step (plateau reads the monitored value); per-batch ones step in the loop."""
        if self.per_batch:
            return
        if self.name == "plateau":
            if monitored is not None:
                scheduler.step(monitored)
        else:
            scheduler.step()


class EarlyStoppingSpec(SpecModel):
    """Stops training when the monitored value has not improved for `patience` epochs."""

    monitor: Optional[MonitorName] = None
    """The row key to watch (`val_loss`, `val_accuracy`, ...); default train.monitor."""
    patience: PositiveInt = 3
    """Epochs without improvement before training stops (default 3)."""
    min_delta: float = Field(0.0, ge=0)
    """The smallest change that counts as an improvement (default 0.0)."""


def _named(table: dict[str, type], what: str, model: type[SpecModel]):
    """`adam`, `{adam: {lr: 0.1}}` or `{name: adam, lr: 0.1}` (or `{lr: 0.1}` where a default exists)."""
    default = model.model_fields["name"].default
    default = default if isinstance(default, str) else None
    return BeforeValidator(
        lambda v: v if isinstance(v, SpecModel) else tagged(v, "name", table, what, default),
        json_schema_input_type=Union[Literal[tuple(table)], dict[str, Any], model],  # type: ignore[valid-type]
    )


Device = Annotated[str, Field(pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$")]


class TrainSpec(SpecModel):
    """How to train: which network, for how many epochs, with which optimizer, loss, metrics and device, plus
    the optional scheduler, early stopping, checkpoints and fine-tuning."""

    network: Optional[str] = None
    """Which of `networks` to train, by name; may be a grid axis. Omitted when the spec has one network."""
    epochs: PositiveInt = 10
    """Passes over the training split (default 10)."""
    # Defaults made without validation, which reads torch's signatures: importing the spec classes
    # (`modelspec schema`) needs no torch. A default is valid by construction.
    optimizer: Annotated[OptimizerSpec, _named(OPTIMIZERS, "optimizer", OptimizerSpec)] = OptimizerSpec.model_construct()
    """The optimizer: a name (`adam`), `{adam: {lr: 0.01}}` or `{name: adam, lr: 0.01}`; default adam with lr
    1e-3."""
    loss: Loss = CrossEntropy.model_construct()
    """The loss function (default `cross_entropy`); the task (multi-class, binary, multi-label, regression)
    follows from it."""
    metrics: Optional[list[Metric]] = Field(None, min_length=1, max_length=32)
    """What the rows, TensorBoard and the final table report, up to 32, each once; default: the task's
    metrics."""
    monitor: Optional[MonitorName] = None
    """The one value that picks the best epoch and the best run, and drives early stopping and the plateau
    scheduler; default val_<first metric>. Its direction comes from the metric (rmse: lower is better)."""
    threshold: float = Field(0.5, gt=0.0, lt=1.0)
    """Binary and multi-label tasks: the probability above which a prediction is 1 (default 0.5)."""
    device: Device = "auto"
    """`auto` (the default: cuda, then mps, then cpu), `cpu`, `mps`, `cuda` or `cuda:N`."""
    amp: Optional[Literal["bf16", "fp16"]] = None
    """Mixed precision: `bf16` or `fp16` (which adds a gradient scaler); omitted, full precision."""
    channels_last: bool = False
    """Use the channels-last memory format, faster for conv nets on GPU (default false)."""
    compile: bool = False
    """torch.compile the model; the first epoch pays the compile time (default false)."""
    grad_clip: Optional[float] = Field(None, gt=0)
    """Clip the total gradient norm to this value; omitted, no clipping."""
    scheduler: Optional[Annotated[SchedulerSpec, _named(SCHEDULERS, "scheduler", SchedulerSpec)]] = None
    """A learning-rate scheduler: a name, `{cosine: {...}}` or `{name: step, step_size: 10}`; omitted, the lr
    stays constant."""
    early_stopping: Optional[EarlyStoppingSpec] = None
    """Stop when the monitored value stops improving; omitted, training runs all the epochs."""
    checkpoint_every: Annotated[Union[Literal["auto"], NonNegativeInt], RESUME_SAFE] = "auto"
    """Epochs between checkpoints (and after the last; 0 turns them off), or `auto` (the default): after each
    epoch that ends 10 s or more after the last checkpoint. A checkpoint is always written on Ctrl-C or
    SIGTERM."""
    deterministic: bool = False
    """Use torch.use_deterministic_algorithms, for exact reproducibility at some cost in speed (default
    false)."""
    init_from: Optional[str] = None
    """Fine-tuning: start from a run folder's (or a weights file's) weights, their shapes checked layer by
    layer; omitted, random initialisation."""
    freeze: list[str] = Field(default_factory=list)
    """Layers not to train, by module name or name prefix (a layer's `name`, else its index); default none."""
    sync_batchnorm: bool = False
    """Under torchrun: batch norms use the statistics of the whole global batch, as one process would, rather
    than each process's part (no effect with one process; default false)."""

    @model_validator(mode="after")
    def _metric_keys_unique(self):
        keys = [m.key for m in self.metrics or ()]
        for index, key in enumerate(keys):
            if key in keys[:index]:
                raise spec_error(f"metric '{key}' is listed twice", key=("metrics", index), hint="remove one")
        return self

    @model_validator(mode="after")
    def _builds(self):
        """Build the optimizer, scheduler and loss once on a dummy parameter: an argument torch refuses
        (a wrong type or value) is a spec error now, not a traceback in the middle of a grid."""
        parameter = nn.Parameter(torch.zeros(1))
        for key, build in (
            ("optimizer", lambda: self.optimizer.build([parameter])),
            ("scheduler", lambda: self.scheduler and self.scheduler.build(
                self.optimizer.build([parameter]), epochs=self.epochs, lr=self.optimizer.lr, steps_per_epoch=1)),
            ("loss", lambda: self.loss.build()),
        ):
            try:
                build()
            except (TypeError, ValueError, RuntimeError, KeyError) as exc:
                message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise spec_error(f"torch refuses these arguments: {message}"[:300], key=key,
                                 hint="see the torch documentation of this class for its arguments")
        return self
