"""`modelspec schema` documents every key: what an editor shows on hover and in completion lists."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

from modelspec.cli.main import app
from modelspec.spec.yaml_source import load_yaml


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(document)
    return document


def _object_schemas(node: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema with `properties` in the document, named by its definition (inline ones by their
    place: `TrainSpec.early_stopping`)."""
    if isinstance(node, dict):
        if isinstance(node.get("properties"), dict):
            yield where, node
        for key, value in node.items():
            if key in ("default", "const", "enum", "examples"):
                continue
            if key == "$defs":
                for name, definition in value.items():
                    yield from _object_schemas(definition, name)
            elif key == "properties":
                for name, prop in value.items():
                    yield from _object_schemas(prop, f"{where}.{name}")
            else:
                yield from _object_schemas(value, where)
    elif isinstance(node, list):
        for value in node:
            yield from _object_schemas(value, where)


def test_every_property_of_every_definition_has_a_description(schema):
    missing = sorted(
        {f"{where}.{name}"
         for where, definition in _object_schemas(schema, "Spec")
         for name, prop in definition["properties"].items()
         if not str(prop.get("description", "")).strip()}
    )
    assert not missing, f"{len(missing)} spec field(s) without a description: " + ", ".join(missing)


def test_every_kind_and_section_has_a_description(schema):
    missing = sorted(name for name, definition in schema["$defs"].items()
                     if "properties" in definition and not str(definition.get("description", "")).strip())
    assert not missing, "definitions without a description (a class docstring): " + ", ".join(missing)


# ---- what an editor shows: it finds the schema of the YAML node under the cursor, as below


def _matching(schema: dict[str, Any], node: dict[str, Any], instance: Any) -> list[dict[str, Any]]:
    """The subschemas `instance` is checked against at `node`: refs followed, and of anyOf/oneOf
    options those it validates against (as the YAML language server narrows a union)."""
    if "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    options = node.get("anyOf") or node.get("oneOf")
    if not options:
        return [node]
    fits = [option for option in options
            if jsonschema.Draft202012Validator({**option, "$defs": schema["$defs"]}).is_valid(instance)]
    return [found for option in fits for found in _matching(schema, option, instance)]


def hover(schema: dict[str, Any], document: Any, path: list[str | int]) -> str:
    """The description an editor shows for the key at `path` in `document`."""
    nodes, instance, description = [schema], document, ""
    for step in path:
        value = instance[step]
        found = []
        for node in (n for parent in nodes for n in _matching(schema, parent, instance)):
            child = node.get("properties", {}).get(step) if isinstance(step, str) else node.get("items")
            if child is not None:
                found.append(child)
                description = description if isinstance(step, int) else child.get("description", "")
        assert found, f"no schema for {path} at {step!r}"
        nodes, instance = found, value
    return description


SPEC = """
name: t
data: {dataset: mnist}
model:
  - conv: {out_channels: 8, kernel_size: 3, padding: 1}
  - relu
  - {type: linear, out_features: num_classes}
train:
  epochs: 3
  optimizer: {adam: {lr: 0.01}}
  early_stopping: {patience: 2}
"""


@pytest.fixture(scope="module")
def document(schema) -> dict[str, Any]:
    raw, _ = load_yaml(SPEC)
    jsonschema.validate(raw, schema)
    return raw


@pytest.mark.parametrize(
    ("path", "words"),
    [
        (["model", 0, "conv", "out_channels"], "filters"),
        (["model", 0, "conv", "kernel_size"], "window"),
        (["model", 0, "conv"], "nn.Conv1d"),  # the short form shows the kind's own description
        (["model", 2, "out_features"], "num_classes"),  # the long form `{type: linear, ...}`
        (["train", "epochs"], "Passes over the training split"),
        (["train", "early_stopping", "patience"], "without improvement"),
        (["name"], "runs land in"),
    ],
)
def test_an_editor_shows_the_description_of_the_key_under_the_cursor(schema, document, path, words):
    assert words in hover(schema, document, path)


def test_descriptions_read_as_prose_without_the_docstrings_line_breaks(schema, document):
    padding = hover(schema, document, ["model", 0, "conv", "padding"])
    assert "same" in padding and "\n" not in padding
    conv = schema["$defs"]["Conv"]["properties"]["padding"]
    assert conv["markdownDescription"] == conv["description"]  # VS Code renders the `code` in it


def test_completion_lists_describe_each_bare_kind_name(schema):
    """`- relu` is a bare name from an enum: each name carries its kind's description."""
    layer = schema["properties"]["model"]["anyOf"][0]["items"]
    (names,) = [option for option in layer["anyOf"] if "enum" in option]
    descriptions = dict(zip(names["enum"], names["enumDescriptions"], strict=True))
    assert "nn.ReLU" in descriptions["relu"]
    assert "nn.Linear" in descriptions["linear"]
    (losses,) = [option for option in schema["$defs"]["TrainSpec"]["properties"]["loss"]["anyOf"] if "enum" in option]
    assert "regression" in dict(zip(losses["enum"], losses["enumDescriptions"], strict=True))["mse"]


# ---- the convention: a field's docstring, right under it, is its description


def test_a_fields_docstring_is_its_description_in_the_model_and_the_schema():
    from modelspec.spec.base import SpecModel

    class DocumentedBase(SpecModel):
        size: int = 1
        """Samples per step."""

    class Documented(DocumentedBase):
        """A kind for this test."""

        rate: float = 0.1
        name: str = "x"
        """The name,
        on two lines."""

    fields = Documented.model_fields
    assert fields["size"].description == "Samples per step."  # inherited with its field
    assert fields["rate"].description is None
    assert fields["name"].description == "The name,\non two lines."
    properties = Documented.model_json_schema()["properties"]
    assert properties["size"]["description"] == "Samples per step."
    assert "description" not in properties["rate"]
