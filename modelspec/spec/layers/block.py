"""A use of a named block (`blocks:` in the spec): a small graph with parameters, used like a layer.

The spec writes `- basic: {channels: 64, stride: 2, repeat: 2}`; the root spec rewrites that into
this long form and fills `body` with the block's layers, its parameters substituted and validated.
The compile passes then treat a use as a nested network (repeated `repeat` times).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from ..base import PositiveInt
from .base import LayerSpec

ParamValue = bool | int | float | str | list[int] | list[float] | None


class BlockUse(LayerSpec):
    """A use of a block defined under `blocks:`, written `- name: {param: value, repeat: n}`: the block's
    layers with its parameters substituted, as one layer."""

    type: Literal["block"] = "block"
    block: str
    """The block's name under `blocks:`."""
    with_: dict[str, ParamValue] = Field(default_factory=dict, alias="with")
    """The block's parameters for this use, by name; parameters the definition defaults may be omitted."""
    repeat: PositiveInt = Field(1, le=100)
    """How many copies of the block to chain in a row, up to 100 (default 1)."""
    # Filled by the spec from `blocks:`; not written by users and not dumped.
    body: SkipJsonSchema[list[Any]] = Field(default_factory=list, exclude=True)
    definition: SkipJsonSchema[tuple[str | int, ...]] = Field(default=(), exclude=True)  # its spec path

    @property
    def label(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.with_.items())
        return f"{self.block}({args})" + (f" ×{self.repeat}" if self.repeat > 1 else "")
