"""What every spec model shares: frozen, strict about unknown keys and about types."""

from __future__ import annotations

import ast
import functools
import inspect
import itertools
import linecache
import re
import sys
import textwrap
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field

# Every value is strict (the model config below): no "5" or 5.0 or true for a size, no true or "0.1"
# for a float (an int is a float). YAML's `1e-3` is a float already (see yaml_source). Every integer
# fits in torch's int64.
INT64_MAX = 2**63 - 1
PositiveInt = Annotated[int, Field(strict=True, gt=0, le=INT64_MAX)]
NonNegativeInt = Annotated[int, Field(strict=True, ge=0, le=INT64_MAX)]
Int = Annotated[int, Field(strict=True, ge=-INT64_MAX - 1, le=INT64_MAX)]
# Seeds feed random, numpy (which takes 32 bits) and torch alike.
Seed = Annotated[int, Field(strict=True, ge=0, lt=2**32)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class SpecModel(BaseModel):
    # No inf or nan: `lr: .inf` is a typo, never a setting.
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        strict=True,
        allow_inf_nan=False,
    )

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """A field's docstring (the string right under it) becomes its description: `model_fields`, the
        schema (`modelspec schema`) and the generated reference read it. Pydantic's own
        `use_attribute_docstrings` walks the import's frames on Python < 3.13, which cost 0.5-1 s per
        command once torch is imported; reading the class's lines costs milliseconds."""
        super().__pydantic_init_subclass__(**kwargs)
        docs = _attribute_docstrings(cls)
        for name, field in cls.model_fields.items():
            if field.description is None and name in docs:
                field.description = docs[name]

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> Any:
        """Each property carries its field's description. A kind's tag (`type: Literal["conv"]`, a
        loss's `name`) is described from its value, so the many kinds need no copy of one docstring."""
        schema = handler(core_schema)
        properties = handler.resolve_ref_schema(schema).get("properties", {})
        for name, field in cls.model_fields.items():
            prop = properties.get(field.alias or name)
            tag = get_args(field.annotation) if get_origin(field.annotation) is Literal else ()
            if prop is None or prop.get("description"):
                continue
            if field.description:
                prop["description"] = field.description
            elif len(tag) == 1 and isinstance(tag[0], str):
                prop["description"] = f"Which kind this is: always `{tag[0]}`."
        return schema


@functools.cache
def _class_lines(filename: str) -> dict[str, int]:
    """The line index of each `class Name` in a source file (the first, where a name repeats)."""
    found: dict[str, int] = {}
    for index, line in enumerate(linecache.getlines(filename)):
        match = re.match(r"\s*class (\w+)\b", line)
        if match:
            found.setdefault(match[1], index)
    return found


def _attribute_docstrings(cls: type) -> dict[str, str]:
    """Field name -> the docstring under it, from the class's own source lines ({} without source)."""
    filename = getattr(sys.modules.get(cls.__module__), "__file__", None) or ""
    start = _class_lines(filename).get(cls.__name__)
    if start is None:
        return {}
    lines = linecache.getlines(filename)
    indent = len(lines[start]) - len(lines[start].lstrip())
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent):
        end += 1
    try:
        (node,) = ast.parse(textwrap.dedent("".join(lines[start:end]))).body
    except (SyntaxError, ValueError):
        return {}
    body = getattr(node, "body", [])
    return {
        field.target.id: inspect.cleandoc(doc.value.value)
        for field, doc in itertools.pairwise(body)
        if isinstance(field, ast.AnnAssign) and isinstance(field.target, ast.Name)
        and isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str)
    }


class ResumeSafe:
    """Field metadata, `Annotated[str, RESUME_SAFE]`: a key that says where the data is, how it is read
    or what is logged, never what a run computes. `modelspec resume --set` may change it, and a run's
    identity (its checkpoint's spec hash) leaves it out. A `location` is a file or folder whose relative
    value is anchored at the grid's start directory on resume."""

    def __init__(self, location: bool = False) -> None:
        self.location = location

    def __repr__(self) -> str:
        return f"ResumeSafe(location={self.location})"


RESUME_SAFE = ResumeSafe()
DATA_LOCATION = ResumeSafe(location=True)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The model classes an annotation holds directly (through Annotated, Optional and unions)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if get_origin(annotation) in (list, tuple, dict):  # items of a list are no fixed path
        return []
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


def resume_safe_fields(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], ResumeSafe]:
    """Every `ResumeSafe` field below `model` by its path (`("data", "root")`), in field order; a key
    that several kinds of a union share (`data.path`) is listed once."""
    found: dict[tuple[str, ...], ResumeSafe] = {}
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        marker = next((m for m in field.metadata if isinstance(m, ResumeSafe)), None)
        if marker is not None:
            found.setdefault(path, marker)
        for inner in _models_in(field.annotation):
            if inner is not model:
                for key, value in resume_safe_fields(inner, path).items():
                    found.setdefault(key, value)
    return found
