"""The train section: network, epochs, optimizer, loss, device and the optional extras.

Optimizer, loss and scheduler names map to a fixed table of torch classes (nothing is imported by a
name from the spec); their other keys are the class's keyword arguments, checked against its signature
at validate time, so `{name: adam, beta: 0.9}` fails before any training with "did you mean betas?".
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Annotated, Any, ClassVar, Literal, Optional, Union

from pydantic import BeforeValidator, ConfigDict, Field, model_validator
from torch import nn, optim
from torch.optim import lr_scheduler

from ..errors import did_you_mean
from ._forms import spec_error, tagged
from .base import NonNegativeInt, PositiveInt, SpecModel

Metric = Literal["val_loss", "val_accuracy", "loss", "accuracy"]


def metric_mode(metric: str) -> Literal["min", "max"]:
    return "max" if metric.endswith("accuracy") else "min"


class _TorchCall(SpecModel):
    """`{name: x, **kwargs}` where x picks a torch class and kwargs are checked against it."""

    model_config = ConfigDict(extra="allow", frozen=True)
    CLASSES: ClassVar[dict[str, type]] = {}
    # Arguments the runner passes itself (the parameters, the optimizer), and ones it fills in.
    SUPPLIED: ClassVar[frozenset[str]] = frozenset({"params", "optimizer", "self"})
    FILLED: ClassVar[dict[str, frozenset[str]]] = {}

    name: str

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def torch_class(self) -> type:
        return self.CLASSES[self.name]

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


OPTIMIZERS = {
    "sgd": optim.SGD, "adam": optim.Adam, "adamw": optim.AdamW, "rmsprop": optim.RMSprop,
    "adagrad": optim.Adagrad, "adadelta": optim.Adadelta, "nadam": optim.NAdam, "radam": optim.RAdam,
}
LOSSES = {"cross_entropy": nn.CrossEntropyLoss, "nll": nn.NLLLoss, "multi_margin": nn.MultiMarginLoss}
SCHEDULERS = {
    "step": lr_scheduler.StepLR, "multistep": lr_scheduler.MultiStepLR,
    "exponential": lr_scheduler.ExponentialLR, "cosine": lr_scheduler.CosineAnnealingLR,
    "onecycle": lr_scheduler.OneCycleLR, "plateau": lr_scheduler.ReduceLROnPlateau,
}


class OptimizerSpec(_TorchCall):
    CLASSES: ClassVar[dict[str, type]] = OPTIMIZERS
    name: Literal[tuple(OPTIMIZERS)] = "adam"  # type: ignore[valid-type]
    lr: float = Field(1e-3, gt=0)


class LossSpec(_TorchCall):
    CLASSES: ClassVar[dict[str, type]] = LOSSES
    name: Literal[tuple(LOSSES)] = "cross_entropy"  # type: ignore[valid-type]


class SchedulerSpec(_TorchCall):
    CLASSES: ClassVar[dict[str, type]] = SCHEDULERS
    # The runner fills these from the train section: cosine's horizon is the epochs, one-cycle's
    # peak is the optimizer's lr and its length the epochs × batches per epoch.
    FILLED: ClassVar[dict[str, frozenset[str]]] = {
        "cosine": frozenset({"T_max"}),
        "onecycle": frozenset({"max_lr", "total_steps", "epochs", "steps_per_epoch"}),
    }
    name: Literal[tuple(SCHEDULERS)]  # type: ignore[valid-type]
    monitor: Metric = "val_loss"  # plateau only: the metric it watches

    @property
    def per_batch(self) -> bool:
        return self.name == "onecycle"


class EarlyStoppingSpec(SpecModel):
    monitor: Metric = "val_loss"
    patience: PositiveInt = 3  # epochs without improvement before stopping
    min_delta: float = Field(0.0, ge=0)


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
    network: Optional[str] = None  # which of `networks`; may be a grid axis
    epochs: PositiveInt = 10
    optimizer: Annotated[OptimizerSpec, _named(OPTIMIZERS, "optimizer", OptimizerSpec)] = OptimizerSpec()
    loss: Annotated[LossSpec, _named(LOSSES, "loss", LossSpec)] = LossSpec()
    device: Device = "auto"  # auto: cuda, then mps, then cpu
    amp: Optional[Literal["bf16", "fp16"]] = None  # mixed precision; fp16 adds a grad scaler
    channels_last: bool = False  # memory format for conv nets on GPU
    compile: bool = False  # torch.compile the model (first epoch pays the compile time)
    grad_clip: Optional[float] = Field(None, gt=0)  # max total gradient norm
    scheduler: Optional[Annotated[SchedulerSpec, _named(SCHEDULERS, "scheduler", SchedulerSpec)]] = None
    early_stopping: Optional[EarlyStoppingSpec] = None
    checkpoint_every: NonNegativeInt = 1  # epochs between checkpoints; 0 turns them off
    deterministic: bool = False  # torch.use_deterministic_algorithms, for exact reproducibility
