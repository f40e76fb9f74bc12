"""The `search:` section: the spec values to sample, how to sample them, and when to prune a trial.

A search is the grid's sibling: where `grid:` lists every value and trains the cartesian product,
`search:` gives each spec path a range or a choice and trains `trials` points that a sampler picks
(Optuna's ask-and-tell; runner/search.py). A spec has one or the other.

    search:
      space:
        train.optimizer.lr: {log_uniform: [1.0e-4, 1.0e-1]}
        model[0].linear.out_features: {int: [16, 256], log: true}
        data.batch_size: {choice: [64, 128, 256]}
      trials: 40
      sampler: tpe
      pruner: {median: {warmup_epochs: 2}}
      seed: 0

Each kind below is one small class: a dimension knows its Optuna distribution and the values that
stand for it at validate time (its bounds, or every choice); a sampler and a pruner build their
Optuna object. Optuna is imported only when a search runs (the `search` extra).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, ClassVar, Literal, Optional, Union

from pydantic import BeforeValidator, Discriminator, Field, Tag, model_validator

from ..errors import did_you_mean
from ._forms import spec_error, tagged_union
from .base import NonNegativeInt, PositiveInt, Seed, SpecModel

# Trials are trained one after another (or a few at once): past this a search is a typo.
MAX_TRIALS = 1000

Bounds = Annotated[list[float], Field(min_length=2, max_length=2)]
IntBounds = Annotated[list[Annotated[int, Field(strict=True)]], Field(min_length=2, max_length=2)]


class _Dimension(SpecModel):
    """One axis of the space."""

    KEY: ClassVar[str]  # the key that names the kind in the spec (`log_uniform: [lo, hi]`)

    @property
    def listed(self) -> list[Any]:
        """The list written under KEY: the bounds, or the choices."""
        return getattr(self, self.KEY)

    def stand_ins(self) -> list[tuple[Any, tuple[str | int, ...]]]:
        """(value, where it is written below the axis): what validate puts into the spec to check
        that the field takes this axis (its bounds, or each choice)."""
        return [(value, (self.KEY, i)) for i, value in enumerate(self.listed)]

    def distribution(self) -> Any:
        raise NotImplementedError

    def value(self, sampled: Any) -> Any:
        """The spec value of what the sampler drew."""
        return sampled


class _Range(_Dimension):
    @model_validator(mode="after")
    def _ordered(self):
        low, high = self.listed
        if low >= high:
            raise spec_error(f"the range [{low}, {high}] is empty or reversed", key=self.KEY,
                             hint="write [low, high] with low < high; a single value needs no search axis")
        return self


class Uniform(_Range):
    """A float drawn evenly between the bounds: `{uniform: [0.0, 0.5]}` (with `step`, on a grid of them)."""

    KEY: ClassVar[str] = "uniform"
    uniform: Bounds
    """[low, high]: the bounds, low < high."""
    step: Optional[Annotated[float, Field(gt=0)]] = None
    """Draw only low, low + step, ... (e.g. 0.05)."""

    def distribution(self) -> Any:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.uniform[0], self.uniform[1], step=self.step)


class LogUniform(_Range):
    """A positive float drawn evenly on a log scale: `{log_uniform: [1.0e-4, 1.0e-1]}` (learning rates)."""

    KEY: ClassVar[str] = "log_uniform"
    log_uniform: Bounds
    """[low, high]: positive bounds, low < high."""

    @model_validator(mode="after")
    def _positive(self):
        if self.log_uniform[0] <= 0:
            raise spec_error(f"a log scale needs positive bounds; received {self.log_uniform[0]}",
                             key=(self.KEY, 0), hint="e.g. [1.0e-5, 1.0e-1]; or use uniform")
        return self

    def distribution(self) -> Any:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.log_uniform[0], self.log_uniform[1], log=True)


class IntRange(_Range):
    """An integer between the bounds, both included: `{int: [16, 256], log: true}` (widths, sizes)."""

    KEY: ClassVar[str] = "int"
    int_: IntBounds = Field(alias="int")
    """[low, high]: integer bounds, both drawn, low < high."""
    log: bool = False
    """Draw evenly on a log scale (16..256 as often as 1..16); the bounds must be positive."""
    step: PositiveInt = 1
    """Draw only low, low + step, ... (not with `log`)."""

    @model_validator(mode="after")
    def _log(self):
        if self.log and self.int_[0] <= 0:
            raise spec_error(f"a log scale needs positive bounds; received {self.int_[0]}", key=(self.KEY, 0))
        if self.log and self.step != 1:
            raise spec_error("`log` and `step` do not go together", key="step", hint="leave one out")
        return self

    @property
    def listed(self) -> list[Any]:
        return self.int_

    def distribution(self) -> Any:
        from optuna.distributions import IntDistribution

        return IntDistribution(self.int_[0], self.int_[1], log=self.log, step=self.step)


class Choice(_Dimension):
    """One of the listed values, any spec value each: `{choice: [64, 128]}`, `{choice: [adam, sgd]}`,
    or whole sections (`{choice: [{name: sgd, lr: 0.1}, {name: adam, lr: 0.001}]}`)."""

    KEY: ClassVar[str] = "choice"
    choice: Annotated[list[Any], Field(min_length=1, max_length=1000)]
    """The values, each a valid value of the axis's spec path, none repeated."""

    @model_validator(mode="after")
    def _distinct(self):
        seen: dict[str, int] = {}
        for index, value in enumerate(self.choice):
            text = json.dumps(value, sort_keys=True, default=str)
            if text in seen:
                raise spec_error(f"{value!r} repeats the choice at position {seen[text]}"[:200], key=(self.KEY, index),
                                 hint="remove the repeated value")
            seen[text] = index
        return self

    def _labels(self) -> list[Any]:
        """What Optuna sees: the values themselves where they are plain strings and numbers, else
        their JSON text (Optuna's choices are scalars, and 1 == true in Python)."""
        plain = all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in self.choice)
        return list(self.choice) if plain else [json.dumps(v, sort_keys=True) for v in self.choice]

    def distribution(self) -> Any:
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(self._labels())

    def value(self, sampled: Any) -> Any:
        return self.choice[self._labels().index(sampled)]


DIMENSIONS: tuple[type[_Dimension], ...] = (Uniform, LogUniform, IntRange, Choice)
_BY_KEY = {kind.KEY: kind.__name__ for kind in DIMENSIONS}


def _dimension_kind(value: Any) -> str | None:
    if isinstance(value, _Dimension):
        return type(value).__name__
    if isinstance(value, dict):
        keys = [key for key in value if key in _BY_KEY]
        return _BY_KEY[keys[0]] if len(keys) == 1 else None
    return None


def _check_dimension(value: Any) -> Any:
    """A mapping with exactly one of the kinds' keys: else a message that names them."""
    if isinstance(value, _Dimension):
        return value
    forms = "{log_uniform: [low, high]}, {uniform: [low, high]}, {int: [low, high]} or {choice: [a, b, ...]}"
    if isinstance(value, list):
        raise spec_error("a search axis is a range or a choice, not a bare list",
                         hint=f"write {{choice: {json.dumps(value, default=str)[:60]}}}")
    if not isinstance(value, dict):
        raise spec_error(f"a search axis is a mapping; received {value!r}"[:200], hint=f"e.g. {forms}")
    keys = [key for key in value if key in _BY_KEY]
    if len(keys) != 1:
        unknown = [str(key) for key in value if key not in _BY_KEY]
        guess = did_you_mean(unknown[0], list(_BY_KEY)) if unknown else ""
        what = "several kinds: " + ", ".join(keys) if keys else "no kind"
        raise spec_error(f"a search axis names {what}", hint=guess or f"write one of {forms}")
    return value


Dimension = Annotated[
    Union[tuple(Annotated[kind, Tag(kind.__name__)] for kind in DIMENSIONS)],  # type: ignore[misc]
    Discriminator(_dimension_kind),
    BeforeValidator(_check_dimension),
]


# ---- samplers


class _Sampler(SpecModel):
    def build(self, seed: int) -> Any:
        raise NotImplementedError


class RandomSampler(_Sampler):
    """Every point drawn independently and evenly from the space."""

    name: Literal["random"] = "random"

    def build(self, seed: int) -> Any:
        import optuna

        return optuna.samplers.RandomSampler(seed=seed)


class TPESampler(_Sampler):
    """Tree-structured Parzen estimator: after `startup_trials` random points, draws where the good
    trials are denser than the bad ones (Optuna's default)."""

    name: Literal["tpe"] = "tpe"
    startup_trials: PositiveInt = 10
    """Random points before the model takes over."""
    multivariate: bool = True
    """Model the axes together (they interact: lr with batch size), not each alone."""

    def build(self, seed: int) -> Any:
        import warnings

        import optuna

        with warnings.catch_warnings():  # `multivariate` is marked experimental, and has been for years
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.startup_trials,
                                              multivariate=self.multivariate, constant_liar=True)


SAMPLERS: tuple[type[_Sampler], ...] = (RandomSampler, TPESampler)
Sampler = tagged_union(SAMPLERS, "sampler", tag="name")


# ---- pruners


class _Pruner(SpecModel):
    def build(self) -> Any:
        raise NotImplementedError


class NoPruner(_Pruner):
    """Every trial trains all its epochs."""

    name: Literal["none"] = "none"

    def build(self) -> Any:
        import optuna

        return optuna.pruners.NopPruner()


class MedianPruner(_Pruner):
    """Stop a trial whose best monitor value so far is worse than the median of the earlier trials'
    at the same epoch."""

    name: Literal["median"] = "median"
    warmup_epochs: PositiveInt = 1
    """Epochs every trial trains: the pruner first judges a trial after the last of them."""
    startup_trials: NonNegativeInt = 5
    """Trials that finish before any is pruned (the median needs some)."""

    def build(self) -> Any:
        import optuna

        return optuna.pruners.MedianPruner(n_startup_trials=self.startup_trials, n_warmup_steps=self.warmup_epochs)


class SuccessiveHalvingPruner(_Pruner):
    """Asynchronous successive halving: at epochs min_epochs × reduction_factor^k, only the best
    1/reduction_factor of the trials that got there go on."""

    name: Literal["successive_halving"] = "successive_halving"
    min_epochs: PositiveInt = 1
    """The first rung: epochs every trial trains."""
    reduction_factor: Annotated[int, Field(strict=True, ge=2, le=100)] = 3
    """How many trials reach a rung for each that goes past it."""

    def build(self) -> Any:
        import optuna

        return optuna.pruners.SuccessiveHalvingPruner(min_resource=self.min_epochs,
                                                      reduction_factor=self.reduction_factor)


PRUNERS: tuple[type[_Pruner], ...] = (NoPruner, MedianPruner, SuccessiveHalvingPruner)
Pruner = tagged_union(PRUNERS, "pruner", tag="name")


class SearchSpec(SpecModel):
    """A search over spec values: `trials` points picked by `sampler` from `space`, each an ordinary
    run; `train.monitor` is the objective, in its direction."""

    space: Annotated[dict[str, Dimension], Field(min_length=1)]
    """Spec path -> a range or a choice: `{log_uniform: [lo, hi]}`, `{uniform: [lo, hi]}`,
    `{int: [lo, hi]}` (with `log: true` or `step`), `{choice: [a, b, ...]}`."""
    trials: Annotated[int, Field(strict=True, gt=0, le=MAX_TRIALS)] = 20
    """How many points to train (points that cannot be built count: they are recorded as failed)."""
    sampler: Sampler = Field(default_factory=TPESampler)
    """How points are picked: `tpe` (default) or `random`."""
    pruner: Pruner = Field(default_factory=MedianPruner)
    """When a trial stops early: `median` (default), `successive_halving` or `none`."""
    seed: Seed = 0
    """The sampler's seed: the same spec and seed pick the same points."""
