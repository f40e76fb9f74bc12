"""pydantic's errors -> issues a user can act on, for any validated type (the spec root, a block's body).

The path is cleaned of pydantic's union-member labels and given what was received and a hint (close
matches for unknown keys and names). This module knows no spec class: the type that was validated is
passed in, so the kinds below the spec root (blocks) can use it without reaching up to the root.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import Path, SpecIssue, did_you_mean, format_path

# --------------------------------------------------------------------------------------------------
# Following a path through the spec's type annotations


def _members(tp: Any) -> list[Any]:
    """The concrete types a (possibly Annotated / Optional / Union) annotation allows."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _members(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(tp) for m in _members(arg)]
    if tp is type(None):
        return []
    return [tp]


def _is_model(tp: Any) -> bool:
    return inspect.isclass(tp) and issubclass(tp, BaseModel)


def _tag(model: type[BaseModel]) -> Any:
    field = model.model_fields.get("type") or model.model_fields.get("name")
    return field.default if field is not None else None


def step(types_: list[Any], part: str | int) -> list[Any] | None:
    """The types at `part` below any of `types_`, or None where `part` is no real path step."""
    out: list[Any] = []
    for tp in types_:
        origin = typing.get_origin(tp)
        if tp is Any:
            out.append(Any)
        elif isinstance(part, int):
            if origin in (list, tuple):
                out += _members(typing.get_args(tp)[0])
        elif origin is dict:
            out += _members(typing.get_args(tp)[1])
        elif _is_model(tp):
            if part in tp.model_fields:
                out += _members(tp.model_fields[part].annotation)
            elif _tag(tp) == part:  # a discriminated union's tag, as pydantic puts it in locations
                out.append(tp)
            elif tp.model_config.get("extra") == "allow":
                out.append(Any)
    return out or None


def models_at(path: Path, root: Any) -> list[type[BaseModel]]:
    types_: list[Any] | None = [root]
    for part in path:
        types_ = step(types_, part)
        if types_ is None:
            return []
    return [tp for tp in types_ if _is_model(tp)]


def _name_tag(types_: list[Any], part: str | int) -> bool:
    """Whether `part` is the `name` tag of a union member (a loss, a metric): the path a user writes
    has no such step (`train.loss.weight`), unlike a layer's kind (`model[1].linear`)."""
    return isinstance(part, str) and any(
        _is_model(tp) and "type" not in tp.model_fields and "dataset" not in tp.model_fields and _tag(tp) == part
        for tp in types_
    )


def _value_tag(tp: Any, part: str | int) -> bool:
    """Whether `part` is the `dataset` of a data kind: a tag that is a key's value, not a key."""
    field = tp.model_fields.get("dataset") if _is_model(tp) else None
    return field is not None and part in typing.get_args(field.annotation)


def _walk(loc: Iterable[str | int], root: Any) -> tuple[Path, list[Any], list[str]]:
    """The clean path of a pydantic error location, the types it ends at, and the data kinds met."""
    types_: list[Any] = [root]
    clean: list[str | int] = []
    kinds: list[str] = []
    for part in loc:
        tagged_kinds = [tp for tp in types_ if _value_tag(tp, part)]
        if tagged_kinds:  # narrows to the kind, but is no step of the YAML
            types_ = tagged_kinds
            kinds.append(str(part))
            continue
        following = step(types_, part)
        if following is None:
            continue
        if not _name_tag(types_, part):
            clean.append(part)
        types_ = following
    return tuple(clean), types_, kinds


def clean_location(loc: Iterable[str | int], root: Any) -> Path:
    """Drop pydantic's union-member labels ('constrained-int', 'list[int]') from an error location."""
    return _walk(loc, root)[0]


# --------------------------------------------------------------------------------------------------
# pydantic errors -> issues


def _received(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _keys(models: list[type[BaseModel]]) -> list[str]:
    keys = [key for model in models for key in model.model_fields if key != "type"]
    return list(dict.fromkeys(keys))


def _issue(error: dict[str, Any], root: Any) -> SpecIssue:
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    loc = clean_location(error["loc"], root)
    hint = str(ctx.get("hint", ""))
    if kind == "extra_forbidden":  # the unknown key is no step of the schema: keep it by hand
        key = error["loc"][-1]
        parent, types_, kinds = _walk(error["loc"][:-1], root)
        loc = parent + (key,)
        keys = _keys([tp for tp in types_ if _is_model(tp)])
        elsewhere = [tp for tp in models_at(parent, root) if key in tp.model_fields] if kinds else []
        if elsewhere:  # a key of another data kind
            owners = [name for tp in elsewhere for name in typing.get_args(tp.model_fields["dataset"].annotation)]
            return SpecIssue(f"'{key}' only applies to dataset {' / '.join(owners)}, not {kinds[-1]}", loc,
                             f"remove '{key}' (from the command line: --unset {format_path(loc)})")
        return SpecIssue(f"unknown key '{key}'", loc, did_you_mean(key, keys) or "valid keys: " + ", ".join(keys))
    if kind == "missing":
        return SpecIssue(f"missing required key '{loc[-1]}'", loc, hint)
    if "key" in ctx:
        loc = loc + tuple(ctx["key"])
    if kind == "literal_error":
        expected = str(ctx.get("expected", ""))
        choices = [c.strip(" '") for c in expected.replace(" or ", ",").split(",")]
        return SpecIssue(
            f"expected {expected}; received {_received(value)}", loc, did_you_mean(value, choices)
        )
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return SpecIssue(f"expected a mapping of keys; received {_received(value)}", loc, hint)
    message = error["msg"]
    if kind == "value_error":
        message = str(ctx.get("error", message))
    elif message.startswith("Input should be"):
        message = "must be" + message[len("Input should be") :] + f"; received {_received(value)}"
    return SpecIssue(message, loc, hint)


def issues_from(exc: ValidationError, root: Any, prefix: Path = ()) -> list[SpecIssue]:
    """One issue per location: union alternatives that all failed are merged into one message.
    `root`: the type that was validated (a block's layer list is validated on its own)."""
    merged: dict[Path, SpecIssue] = {}
    for error in exc.errors():
        issue = _issue(error, root)
        issue = SpecIssue(issue.message, prefix + issue.path, issue.hint)
        if issue.path in merged:
            old = merged[issue.path]
            if issue.message not in old.message:
                merged[issue.path] = SpecIssue(
                    f"{old.message.split('; received')[0]}, or {issue.message}", old.path, old.hint or issue.hint
                )
        else:
            merged[issue.path] = issue
    return list(merged.values())
