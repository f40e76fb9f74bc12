"""Named blocks: a small graph with parameters, defined once under `blocks:` and used like a layer.

```yaml
blocks:
  basic:
    params: {channels: null, stride: 1}     # null: required
    layers:
      - conv: {out_channels: $channels, kernel_size: 3, stride: $stride, padding: 1, bias: false}
      ...
model:
  - basic: {channels: 64, repeat: 2}
```

A use is rewritten into the long form `{type: block, block: basic, with: {...}}` before validation;
after it, each use gets its body: the block's layers with `$name` replaced by the use's values,
validated like any layer list. Errors in a body are located at the block's definition and name the
use site.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, TypeAdapter, ValidationError, field_validator

from ..errors import Path, did_you_mean, format_path
from ._forms import spec_error
from .base import SpecModel
from .issues import issues_from
from .layers import LAYER_TYPES, BlockUse, Layer, LayerSpec
from .layers.block import ParamValue

# Keys of a use that belong to the use, not to the block's parameters.
_USE_KEYS = ("name", "from", "repeat")
_LAYERS = TypeAdapter(list[Layer])


class BlockDef(SpecModel):
    """A named block under `blocks:`: a small graph of layers with parameters, used like a layer kind
    (`- name: {param: value, repeat: n}`)."""

    params: dict[str, ParamValue] = Field(default_factory=dict)
    """The block's parameters, name -> default value; a null default makes the parameter required. The
    layers refer to a parameter as `$name`."""
    # Validated per use, once the parameters are in: until then `$channels` stands where a number goes.
    layers: list[dict[str, Any] | str] = Field(min_length=1)
    """The block's layers, written as in `model:` (with `name`/`from` for a graph), `$name` standing for
    a parameter's value."""

    @field_validator("params")
    @classmethod
    def _identifiers(cls, params: dict[str, Any]) -> dict[str, Any]:
        bad = [name for name in params if not name.isidentifier()]
        if bad:
            raise ValueError(f"parameter names must be identifiers; received {bad}")
        return params


def check_block_names(names: list[str]) -> None:
    for name in names:
        if name in LAYER_TYPES or name == "block" or not name.isidentifier():
            raise spec_error(
                f"'{name}' cannot name a block" + (": it is a layer kind" if name in LAYER_TYPES else ""),
                key=("blocks", name),
                hint="pick another name (an identifier)",
            )


def rewrite_uses(items: Any, blocks: Any) -> Any:
    """Raw layer items: `basic` / `{basic: {...}}` -> `{type: block, block: basic, with: {...}}`."""
    if not isinstance(items, list) or not isinstance(blocks, dict):
        return items
    out = []
    for item in items:
        if isinstance(item, str) and item in blocks:
            item = {"type": "block", "block": item}
        elif isinstance(item, dict) and len(item) == 1 and "type" not in item:
            ((key, args),) = item.items()
            # A misspelled block name (no layer kind, close to a block) is reported as a block use.
            meant = key in blocks or (key not in LAYER_TYPES and did_you_mean(key, blocks))
            if meant and (args is None or isinstance(args, dict)):
                args = args or {}
                use = {k: args[k] for k in _USE_KEYS if k in args}
                item = {"type": "block", "block": key, **use, "with": {k: v for k, v in args.items() if k not in use}}
        out.append(item)
    return out


def resolve_uses(layers: list[LayerSpec], blocks: dict[str, BlockDef], path: Path,
                 stack: tuple[str, ...] = ()) -> list[LayerSpec]:
    """The layers with each block use's body filled in (recursively: blocks may use blocks)."""
    return [
        _resolved(layer, blocks, path + (index,), stack) if isinstance(layer, BlockUse) else layer
        for index, layer in enumerate(layers)
    ]


def layer_count(layers: list[LayerSpec]) -> int:
    """Layers once the block uses are expanded (what the shape pass builds)."""
    return sum(layer.repeat * layer_count(layer.body) if isinstance(layer, BlockUse) else 1 for layer in layers)


def _resolved(use: BlockUse, blocks: dict[str, BlockDef], at: Path, stack: tuple[str, ...]) -> BlockUse:
    if use.block not in blocks:
        raise spec_error(
            f"'{use.block}' names no block",
            key=at + ("block",),
            hint=did_you_mean(use.block, blocks) or "blocks: " + (", ".join(blocks) or "none defined"),
        )
    if use.block in stack:
        raise spec_error(f"block '{use.block}' uses itself ({' -> '.join((*stack, use.block))})", key=at)
    definition = blocks[use.block]
    values = _values(use, definition, at)
    where = ("blocks", use.block, "layers")
    site = f"in block '{use.block}' used at {format_path(at)}"
    raw = rewrite_uses(_substitute(definition.layers, values, use.block, where), blocks)
    try:
        body = _LAYERS.validate_python(raw)
    except ValidationError as exc:
        issues = issues_from(exc, list[Layer], where)
        first = issues[0]
        more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
        raise spec_error(f"{site}: {first.message}{more}", key=first.path, hint=first.hint) from None
    body = resolve_uses(body, blocks, where, (*stack, use.block))
    return use.model_copy(update={"body": body, "definition": where})


def _values(use: BlockUse, definition: BlockDef, at: Path) -> dict[str, Any]:
    unknown = [name for name in use.with_ if name not in definition.params]
    if unknown:
        raise spec_error(
            f"block '{use.block}' has no parameter '{unknown[0]}'",
            key=at + ("with", unknown[0]),
            hint=did_you_mean(unknown[0], definition.params)
            or "its parameters: " + (", ".join(definition.params) or "none"),
        )
    values = {**definition.params, **use.with_}
    missing = [name for name, value in values.items() if value is None]
    if missing:
        raise spec_error(
            f"block '{use.block}' needs {', '.join(missing)}",
            key=at,
            hint=f"write `{use.block}: {{{missing[0]}: ...}}`",
        )
    return values


def _substitute(node: Any, values: dict[str, Any], block: str, path: Path) -> Any:
    """`$name` (a whole string) -> the parameter's value, anywhere in the raw layers."""
    if isinstance(node, list):
        return [_substitute(item, values, block, path + (i,)) for i, item in enumerate(node)]
    if isinstance(node, dict):
        return {key: _substitute(value, values, block, path + (key,)) for key, value in node.items()}
    if isinstance(node, str) and node.startswith("$"):
        if node[1:] not in values:
            raise spec_error(
                f"block '{block}' has no parameter '{node[1:]}'",
                key=path,
                hint=did_you_mean(node[1:], values) or "its parameters: " + (", ".join(values) or "none"),
            )
        return values[node[1:]]
    return node


__all__ = ["BlockDef", "check_block_names", "layer_count", "resolve_uses", "rewrite_uses"]
