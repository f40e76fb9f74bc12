"""Validation pass: raw YAML data -> `Spec`, or a `SpecError` listing every located problem.

pydantic does the checking; `issues` turns its errors into messages a user can act on, which are then
located in the file through the `SourceMap`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import Path, SpecError, SpecIssue, format_path
from . import issues as _issues
from .issues import step
from .root import Spec
from .yaml_source import SourceMap


def models_at(path: Path, root: type[BaseModel] = Spec) -> list[type[BaseModel]]:
    """The spec classes a path may lead to (several where a union is on the way)."""
    return _issues.models_at(path, root)


def clean_location(loc: Iterable[str | int], root: type[BaseModel] = Spec) -> Path:
    """Drop pydantic's union-member labels ('constrained-int', 'list[int]') from an error location."""
    return _issues.clean_location(loc, root)


def issues_from(exc: ValidationError, prefix: Path = (), root: Any = Spec) -> list[SpecIssue]:
    """One issue per location of a spec's validation error (see `issues.issues_from`)."""
    return _issues.issues_from(exc, root, prefix)


def validate_data(raw: Any, source: SourceMap) -> Spec:
    """Validate raw data into a `Spec`; every problem is raised together, located."""
    if not isinstance(raw, dict):
        kinds = {list: "a list", str: "a string", bool: "true or false", int: "a number", float: "a number"}
        what = "empty" if raw is None else f"{kinds.get(type(raw), type(raw).__name__)}, not a mapping"
        raise SpecError(
            [source.issue(SpecIssue(f"the spec is {what}", (), "a spec is a mapping with name, data, model ..."))]
        )
    try:
        return Spec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError([source.issue(issue) for issue in issues_from(exc)]) from None


def relocate(exc: SpecError, source: SourceMap, prefix: Path = ()) -> SpecError:
    """Prefix and locate issues raised by a later pass (shapes, grid)."""
    return SpecError([source.issue(SpecIssue(i.message, prefix + i.path, i.hint)) for i in exc.issues])


__all__ = ["clean_location", "format_path", "issues_from", "models_at", "relocate", "step", "validate_data"]
