"""Run grids: spec path -> values; the runs are the cartesian product, each a full, valid spec.

A grid key is checked against the spec's structure, and every value is validated by putting it
into the spec and validating the whole, so a wrong value is reported at its own line in `grid:`.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from typing import Any

from ..errors import Path, SpecError, SpecIssue, did_you_mean, format_path

from .paths import parse_path, registered_names, set_path
from .root import Spec
from .validate import models_at, step, validate_data
from .yaml_source import SourceMap

# Runs are trained one after another; past this a grid is a typo in a list (or wants several specs),
# and checking every run alone would take seconds.
MAX_RUNS = 1000


@dataclass(frozen=True)
class RunPlan:
    """One run of a grid: its readable name, its grid values and its resolved spec."""

    name: str
    values: dict[str, Any]  # grid key -> value
    spec: Spec


# Sections that cannot differ between the runs of one grid, and why.
FIXED_PER_GRID = {
    "grid": "a grid cannot hold a grid",
    "search": "a search cannot hold a search",
    "name": "all runs of a grid share one name, which names the grid's folder",
    "tracking": "all runs of a grid are written to one folder with the same tracking settings",
    "export": "runs that differ only in how they are exported would train the same model twice; "
              "export a run in other formats with `modelspec export RUN --format ...`",
}


def _check_key(key: str, what: str = "grid") -> Path:
    path = parse_path(key)
    if path[0] in FIXED_PER_GRID:
        raise SpecError(f"'{path[0]}' cannot be a {what} axis: {FIXED_PER_GRID[path[0]]}",
                        hint=f"{what} keys are paths like train.optimizer.lr")
    types_: list[Any] | None = [Spec]
    for depth, part in enumerate(path):
        following = step(types_, part)
        if following is None:
            keys = [k for m in models_at(path[:depth]) for k in m.model_fields]
            hint = did_you_mean(part, keys) or (
                "valid keys here: " + ", ".join(keys) if keys else "list items are written [index]"
            )
            raise SpecError(f"{what} key '{key}' names no spec path ('{part}' is not there)", hint=hint)
        types_ = following
    return path


def _short_names(keys: list[str]) -> dict[str, str]:
    """`train.optimizer.lr` -> `lr`, with more of the path wherever two keys would read the same."""
    paths = {key: [str(p) for p in parse_path(key)] for key in keys}
    for depth in range(1, 1 + max((len(p) for p in paths.values()), default=1)):
        names = {key: ".".join(parts[-depth:]) for key, parts in paths.items()}
        if len(set(names.values())) == len(names):
            return names
    return {key: key for key in keys}


def _value_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _canonical(path: Path) -> Path:
    """The path without layer-kind steps: `model[0].conv.out_channels` sets `model[0].out_channels`."""
    names = registered_names()
    return tuple(part for i, part in enumerate(path)
                 if not (i and isinstance(path[i - 1], int) and isinstance(part, str) and part in names))


def _overlaps(paths: dict[str, Path], section: Path = ("grid",)) -> list[SpecIssue]:
    """Axes where one sets part of what another sets: a run would be named for a value it did not
    train with (`lr=0.1` beside an optimizer axis that sets lr 0.01)."""
    issues, seen = [], []
    for key, path in paths.items():
        canonical = _canonical(path)
        for other, other_path in seen:
            shorter = min(len(canonical), len(other_path))
            if canonical[:shorter] == other_path[:shorter]:
                message = (f"{section[0]} axes '{other}' and '{key}' overlap: one sets what the other sets, so "
                           "a run's name and columns would not say what it trained with")
                hint = "give each setting in one axis only (a whole-section axis can list every variant)"
                issues.append(SpecIssue(message, (*section, key), hint))
                break
        seen.append((key, canonical))
    return issues


def _repeats(key: str, values: list[Any]) -> list[SpecIssue]:
    """Values of one axis that are equal, or that read the same in a run's name (`true` and "true"):
    their runs would share one name, and the results table one row set."""
    issues, seen = [], {}
    for index, value in enumerate(values):
        for form in (json.dumps(value, sort_keys=True, default=str), _value_text(value)):
            if form in seen:
                first = seen[form]
                message = (f"{key}={_value_text(value)} repeats the value at position {first} of this axis: "
                           "two runs would share one name and one set of results")
                issues.append(SpecIssue(message, ("grid", key, index), "remove the repeated value"))
                break
        else:
            seen.update({json.dumps(value, sort_keys=True, default=str): index, _value_text(value): index})
    return issues


# An axis's values as validate checks them: (value, where it is written) for each.
AxisValues = list[tuple[Any, Path]]


def check_grid(raw: dict, source: SourceMap) -> list[SpecIssue]:
    """Every grid key names a spec path, axes neither repeat a value nor overlap, and every value
    validates in place, beside the other axes' first values (each run is validated as it will run:
    a `train.network` axis names the network of the runs of every other axis)."""
    grid = raw.get("grid") or {}
    sizes = [len(values) for values in grid.values()]
    if math.prod(sizes) > MAX_RUNS:
        message = f"the grid makes {math.prod(sizes):,} runs ({' × '.join(map(str, sizes))})"
        hint = f"modelspec takes at most {MAX_RUNS:,} runs from one spec: narrow an axis, or split the study"
        return [source.issue(SpecIssue(message, ("grid",), hint))]
    issues: list[SpecIssue] = []
    for key, values in grid.items():
        if not values:
            issues.append(source.issue(SpecIssue("a grid axis needs at least one value", ("grid", key))))
        issues += [source.issue(i) for i in _repeats(key, values)]
    axes = {key: [(value, ("grid", key, i)) for i, value in enumerate(values)] for key, values in grid.items()}
    return issues + check_axes(raw, source, ("grid",), axes, skip_values=bool(issues))


def check_search(raw: dict, source: SourceMap, space: dict[str, Any]) -> list[SpecIssue]:
    """A search space's keys as a grid's, and each range's bounds (each choice's values) validated in
    place at its own line: a bound the field refuses is an error before any trial is sampled."""
    section = ("search", "space")
    axes = {key: [(value, (*section, key, *where)) for value, where in dimension.stand_ins()]
            for key, dimension in space.items()}
    return check_axes(raw, source, section, axes)


def check_axes(raw: dict, source: SourceMap, section: Path, axes: dict[str, AxisValues],
               skip_values: bool = False) -> list[SpecIssue]:
    """The axes' keys name spec paths and do not overlap; then (unless `skip_values` or a key is
    wrong) each value is validated in place beside the other axes' first values."""
    what = section[0]
    issues: list[SpecIssue] = []
    paths: dict[str, Path] = {}
    for key in axes:
        try:
            paths[key] = _check_key(str(key), what)
        except SpecError as exc:
            issues += [source.issue(SpecIssue(i.message, (*section, key), i.hint)) for i in exc.issues]
    issues += [source.issue(i) for i in _overlaps(paths, section)]
    if issues or skip_values:
        return issues
    base = {k: v for k, v in raw.items() if k != what}
    for key, path in paths.items():
        others = {k: p for k, p in paths.items() if k != key}
        context = base
        for other, other_path in others.items():
            if axes[other]:
                context = set_path(context, other_path, axes[other][0][0])
        for value, where in axes[key]:
            try:
                validate_data(set_path(context, path, value), SourceMap(source.file))
            except SpecError as exc:
                for issue in exc.issues:
                    if any(issue.path[: len(p)] == p for p in others.values()):
                        continue  # about another axis's value: reported at that axis
                    at = "" if issue.path == path else f" ({format_path(issue.path)})"
                    message = f"{key}={_value_text(value)}{at}: {issue.message}"
                    issues.append(source.issue(SpecIssue(message, where, issue.hint)))
    return issues


def expand_grid(spec: Spec, raw: dict) -> list[RunPlan]:
    """The runs of the grid in order (the last key varies fastest), each with the grid emptied."""
    if not spec.grid:
        return [plan_of(raw, {}, "run")]
    keys = list(spec.grid)
    short = _short_names(keys)
    runs = []
    for combo in itertools.product(*(spec.grid[k] for k in keys)):
        name = ",".join(f"{short[k]}={_value_text(v)}" for k, v in zip(keys, combo))
        runs.append(plan_of(raw, dict(zip(keys, combo)), name))
    names = [run.name for run in runs]
    if len(set(names)) < len(names):  # results are kept by run name: two runs must never share one
        twice = sorted({n for n in names if names.count(n) > 1})
        raise SpecError(f"runs {', '.join(twice)} would share a name", path=("grid",),
                        hint="grid values must read differently")
    return runs


def plan_of(raw: dict, values: dict[str, Any], name: str) -> RunPlan:
    """One run: the spec with each axis's value set at its path (and its grid or search emptied),
    validated; a value the spec refuses is an error that names the run."""
    data = {k: v for k, v in raw.items() if k not in ("grid", "search")}
    for key, value in values.items():
        data = set_path(data, parse_path(key), value)
    try:
        return RunPlan(name, dict(values), validate_data(data, SourceMap("<spec>")))
    except SpecError as exc:
        section = "search" if "search" in raw else "grid"
        raise SpecError([SpecIssue(f"run {name}: {i.message}", (section,), i.hint) for i in exc.issues]) from None


def point_name(keys: list[str], values: dict[str, Any]) -> str:
    """A search point's run name: its values by their short names, floats to 4 significant digits
    (`lr=0.003162,batch_size=128`)."""
    short = _short_names(keys)
    text = lambda v: f"{v:.4g}" if isinstance(v, float) else _value_text(v)  # noqa: E731
    return ",".join(f"{short[k]}={text(values[k])}" for k in keys)


def grid_location(spec: Spec, values: dict[str, Any], path: Path) -> Path:
    """Where a run's value at `path` was written: its grid axis's value (`grid.KEY[i]`), or its
    search axis (`search.space.KEY`), where an axis set it, else `path` itself. Errors found while a
    run runs are located with it."""
    canonical = _canonical(tuple(path))
    for key, value in values.items():
        axis = _canonical(parse_path(key))
        if canonical[: len(axis)] == axis:
            return ("search", "space", key) if spec.search else ("grid", key, spec.grid[key].index(value))
    return tuple(path)
