"""Shared spellings: a list item or value may be a bare name, a one-key mapping, or the long form."""

from __future__ import annotations

from typing import Any, Iterable

from pydantic_core import PydanticCustomError

from ..errors import did_you_mean


def spec_error(
    message: str, *, key: str | tuple[str | int, ...] | None = None, hint: str = ""
) -> PydanticCustomError:
    """A validation error with a hint; `key` adds path segments below the failing model."""
    ctx: dict[str, Any] = {"hint": hint}
    if key is not None:
        ctx["key"] = (key,) if isinstance(key, str) else tuple(key)
    return PydanticCustomError("spec", message, ctx)


def tagged(value: Any, tag: str, names: Iterable[str], what: str, default: str | None = None) -> Any:
    """`name` or `{name: {...}}` -> `{tag: name, ...}`; the long form `{tag: name, ...}` passes.

    A mapping without `tag` whose one key is not a name takes `default` (`{lr: 0.1}` is adam's).
    """
    names = list(names)
    if isinstance(value, str):
        value = {tag: value}
    elif isinstance(value, dict) and tag not in value:
        if len(value) == 1 and (next(iter(value)) in names or default is None):
            ((name, params),) = value.items()
            if params is None:
                value = {tag: name}
            elif isinstance(params, dict):
                value = {tag: name, **params}
            else:
                raise spec_error(
                    f"the arguments of {what} '{name}' must be a mapping; received {params!r}"[:200],
                    hint=f"write `{name}: {{...}}`",
                )
        elif default is not None:
            value = {tag: default, **value}
    if not isinstance(value, dict) or tag not in value:
        raise spec_error(
            f"expected a {what} name, or a one-key mapping `name: {{...}}`; received {value!r}"[:200],
            hint="valid names: " + ", ".join(names),
        )
    if value[tag] not in names:
        raise spec_error(
            f"unknown {what} '{value[tag]}'",
            hint=did_you_mean(value[tag], names) or "valid names: " + ", ".join(names),
        )
    return value


def input_forms(kinds: Iterable[type], tag: str) -> Any:
    """The spellings a tagged list item accepts, as a type for the JSON Schema (editor completion):
    a bare name, a one-key mapping `name: {...}`, or the long form."""
    from typing import Literal, Optional, Union

    from pydantic import ConfigDict, create_model

    kinds = list(kinds)
    names = [k.model_fields[tag].default for k in kinds]
    one_key = [
        create_model(f"{name}_form", __config__=ConfigDict(extra="forbid"), **{name: (Optional[kind], ...)})
        for name, kind in zip(names, kinds)
    ]
    return Union[(Literal[tuple(names)], *one_key, *kinds)]


def tagged_union(kinds: Iterable[type], what: str, tag: str = "type") -> Any:
    """The spec type of a registry of small classes told apart by `tag` (layers' and transforms'
    `type`, losses' and metrics' `name`): a discriminated union that also takes the short spellings
    (`bce`, `{f1: {average: macro}}`, `{type: ..., ...}`)."""
    from typing import Annotated, Union

    from pydantic import BeforeValidator, Field

    kinds = tuple(kinds)
    names = [k.model_fields[tag].default for k in kinds]

    def normalize(value: Any) -> Any:
        return value if isinstance(value, kinds) else tagged(value, tag, names, what)

    return Annotated[
        Annotated[Union[kinds], Field(discriminator=tag)],  # type: ignore[valid-type]
        BeforeValidator(normalize, json_schema_input_type=input_forms(kinds, tag)),
    ]
