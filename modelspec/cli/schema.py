"""`modelspec schema`: the JSON Schema of the spec language, for editor completion and hover."""

from __future__ import annotations

import json
import re
from typing import Any

import typer

from ..spec.root import Spec
from ._common import command

# `_forms.input_forms` names its one-key wrappers (`conv: {...}`) `<name>_form`.
_FORM = re.compile(r"^(?P<name>.+)_form$")
# Keys whose values are spec data, not schemas: left as they are.
_VALUES = ("default", "const", "enum", "examples")


def spec_schema() -> dict[str, Any]:
    """The spec's JSON Schema: every field's docstring is its description (SpecModel reads them), and
    the short spellings of a kind (`conv`, `conv: {...}`) show the kind's own description."""
    document = Spec.model_json_schema()
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "modelspec spec"
    defs = document.get("$defs", {})
    for definition in defs.values():
        _describe_form(definition, defs)
    for node in _objects(document):
        _describe_names(node, defs)
        if isinstance(node.get("description"), str):
            node["description"] = _unwrap(node["description"])
            # VS Code's YAML extension renders this one as markdown (the `code` in descriptions).
            node["markdownDescription"] = node["description"]
    return document


def _form_name(definition: dict[str, Any]) -> str | None:
    """The kind's name when `definition` is a `<name>_form` wrapper (a one-key mapping), else None."""
    match = _FORM.match(definition.get("title", ""))
    return match["name"] if match and list(definition.get("properties", {})) == [match["name"]] else None


def _describe_form(definition: dict[str, Any], defs: dict[str, Any]) -> None:
    """A `<name>_form` wrapper gets its kind's description, on itself and on its one key."""
    name = _form_name(definition)
    if name is None:
        return
    prop = definition["properties"][name]
    refs = [option["$ref"] for option in prop.get("anyOf", [prop]) if "$ref" in option]
    kind = defs.get(refs[0].rsplit("/", 1)[-1], {}) if len(refs) == 1 else {}
    if kind.get("description"):
        definition.setdefault("description", kind["description"])
        prop.setdefault("description", kind["description"])


def _describe_names(node: dict[str, Any], defs: dict[str, Any]) -> None:
    """The bare-name spelling (`- relu`) is an enum beside the kinds' `<name>_form` wrappers: give each
    name its kind's description, for completion lists (`enumDescriptions`)."""
    options = node.get("anyOf", [])
    described = {}
    for option in options:
        form = defs.get(option.get("$ref", "").rsplit("/", 1)[-1], {})
        if _form_name(form) and form.get("description"):
            described[_form_name(form)] = _unwrap(form["description"])
    for option in options:
        names = option.get("enum")
        if names and all(name in described for name in names):
            option["enumDescriptions"] = [described[name] for name in names]


def _objects(node: Any):
    """Every mapping in the schema document, depth first."""
    if isinstance(node, dict):
        yield node
        for key, value in list(node.items()):
            if key not in _VALUES:
                yield from _objects(value)
    elif isinstance(node, list):
        for value in node:
            yield from _objects(value)


def _unwrap(text: str) -> str:
    """Docstrings wrap at the code's line length; an editor's hover wraps by itself. Paragraphs stay."""
    return "\n\n".join(" ".join(part.split()) for part in re.split(r"\n\s*\n", text.strip()))


@command
def schema() -> None:
    """Print the spec's JSON Schema (for the VS Code YAML extension: yaml.schemas)."""
    typer.echo(json.dumps(spec_schema(), indent=2))
