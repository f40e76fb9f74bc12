"""`modelspec schema`: the JSON Schema of the spec language, for editor completion."""

from __future__ import annotations

import json

import typer

from ..spec.root import Spec
from ._common import command


@command
def schema() -> None:
    """Print the spec's JSON Schema (for the VS Code YAML extension: yaml.schemas)."""
    document = Spec.model_json_schema()
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "modelspec spec"
    typer.echo(json.dumps(document, indent=2))
