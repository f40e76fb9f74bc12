"""Run grids: spec path -> values; the runs are the cartesian product, each a full, valid spec.

A grid key is checked against the spec's structure, and every value is validated by putting it
into the spec and validating the whole, so a wrong value is reported at its own line in `grid:`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

from ..errors import Path, SpecError, SpecIssue, did_you_mean, format_path

# Runs are trained one after another; past this a grid is a typo in a list (or wants several specs),
# and checking every run alone would take seconds.
MAX_RUNS = 1000
from .paths import parse_path, set_path
from .root import Spec
from .validate import models_at, step, validate_data
from .yaml_source import SourceMap


@dataclass(frozen=True)
class RunPlan:
    """One run of a grid: its readable name, its grid values and its resolved spec."""

    name: str
    values: dict[str, Any]  # grid key -> value
    spec: Spec


def _check_key(key: str) -> Path:
    path = parse_path(key)
    if path[0] in ("grid", "name"):
        raise SpecError(f"'{path[0]}' cannot be a grid axis", hint="grid keys are paths like train.optimizer.lr")
    types_: list[Any] | None = [Spec]
    for depth, part in enumerate(path):
        following = step(types_, part)
        if following is None:
            keys = [k for m in models_at(path[:depth]) for k in m.model_fields]
            hint = did_you_mean(part, keys) or (
                "valid keys here: " + ", ".join(keys) if keys else "list items are written [index]"
            )
            raise SpecError(f"grid key '{key}' names no spec path ('{part}' is not there)", hint=hint)
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


def check_grid(raw: dict, source: SourceMap) -> list[SpecIssue]:
    """Every grid key names a spec path, and every value validates in place (on validated data)."""
    issues: list[SpecIssue] = []
    grid = raw.get("grid") or {}
    sizes = [len(values) for values in grid.values()]
    if math.prod(sizes) > MAX_RUNS:
        message = f"the grid makes {math.prod(sizes):,} runs ({' × '.join(map(str, sizes))})"
        hint = f"modelspec takes at most {MAX_RUNS:,} runs from one spec: narrow an axis, or split the study"
        return [source.issue(SpecIssue(message, ("grid",), hint))]
    base = {k: v for k, v in raw.items() if k != "grid"}
    for key, values in grid.items():
        try:
            path = _check_key(str(key))
        except SpecError as exc:
            issues += [source.issue(SpecIssue(i.message, ("grid", key), i.hint)) for i in exc.issues]
            continue
        if not values:
            issues.append(source.issue(SpecIssue("a grid axis needs at least one value", ("grid", key))))
        for index, value in enumerate(values):
            try:
                validate_data(set_path(base, path, value), SourceMap(source.file))
            except SpecError as exc:
                for issue in exc.issues:
                    where = "" if issue.path == path else f" ({format_path(issue.path)})"
                    message = f"{key}={_value_text(value)}{where}: {issue.message}"
                    issues.append(source.issue(SpecIssue(message, ("grid", key, index), issue.hint)))
    return issues


def expand_grid(spec: Spec, raw: dict) -> list[RunPlan]:
    """The runs of the grid in order (the last key varies fastest), each with the grid emptied."""
    base = {k: v for k, v in raw.items() if k != "grid"}
    if not spec.grid:
        return [RunPlan("run", {}, validate_data(base, SourceMap("<spec>")))]
    keys = list(spec.grid)
    short = _short_names(keys)
    runs = []
    for combo in itertools.product(*(spec.grid[k] for k in keys)):
        data = base
        for key, value in zip(keys, combo):
            data = set_path(data, parse_path(key), value)
        name = ",".join(f"{short[k]}={_value_text(v)}" for k, v in zip(keys, combo))
        try:
            run_spec = validate_data(data, SourceMap("<spec>"))
        except SpecError as exc:
            raise SpecError(
                [SpecIssue(f"run {name}: {i.message}", ("grid",), i.hint) for i in exc.issues]
            ) from None
        runs.append(RunPlan(name, dict(zip(keys, combo)), run_spec))
    return runs
