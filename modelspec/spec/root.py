"""The root of a spec, and the rules that span sections."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import Field, model_validator

from ..errors import did_you_mean
from ._forms import spec_error
from .base import Seed, SpecModel
from .blocks import BlockDef, check_block_names, layer_count, resolve_uses, rewrite_uses
from .data import DataSpec
from .export import ExportSpec, FolderName, TrackingSpec
from .layers import Layer, LayerSpec
from .search import SearchSpec
from .train import TrainSpec


# Deeper than any network modelspec trains; each layer is built (on the meta device) to count it.
MAX_LAYERS = 1000


class Spec(SpecModel):
    """A modelspec spec: the data, the network(s), how to train them, the grid of runs, and the export and
    tracking settings."""

    name: FolderName
    """The experiment's name; its runs land in `<tracking.dir>/<name>/` (letters, digits and _ . -)."""
    seed: Seed = 0
    """The seed of every run (random, numpy and torch), unless the grid varies `seed` (default 0)."""
    data: DataSpec
    """The data set: its kind (`dataset`), where it is, and how it is split and loaded."""
    blocks: dict[str, BlockDef] = Field(default_factory=dict)
    """Named blocks (small graphs with parameters) that networks use like layer kinds: `- name: {param:
    value}`."""
    model: Optional[list[Layer]] = None
    """The network, as a list of layers (a stack, or a graph with `name`/`from`). Give `model` or `networks`,
    exactly one."""
    networks: Optional[dict[str, list[Layer]]] = None
    """Several networks by name, each a list of layers; train.network picks the one to train (and may be a
    grid axis)."""
    train: TrainSpec = Field(default_factory=TrainSpec)
    """How to train: epochs, optimizer, loss, metrics, device and the optional extras."""
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    """Spec path -> list of values (e.g. `train.optimizer.lr: [0.1, 0.01]`); the runs are the cartesian
    product of the lists. Empty: one run."""
    search: Optional[SearchSpec] = None
    """A search instead of a grid: spec paths with ranges or choices, and how many points to train
    (`trials`), picked by a sampler and pruned when they fall behind. Give `grid` or `search`, not both."""
    export: ExportSpec = Field(default_factory=ExportSpec)
    """What `modelspec export` writes: the formats and their verification."""
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)
    """Where runs land and which tracking backends they report to."""

    @model_validator(mode="before")
    @classmethod
    def _block_uses(cls, raw: Any) -> Any:
        """`- basic: {channels: 64}` names a block: rewrite it into the long form of a block use."""
        if not isinstance(raw, dict) or not isinstance(raw.get("blocks"), dict):
            return raw
        raw = dict(raw)
        blocks = raw["blocks"]
        if "model" in raw:
            raw["model"] = rewrite_uses(raw["model"], blocks)
        if isinstance(raw.get("networks"), dict):
            raw["networks"] = {name: rewrite_uses(layers, blocks) for name, layers in raw["networks"].items()}
        return raw

    @model_validator(mode="after")
    def _resolve_blocks(self):
        """Each block use gets its body: the block's layers with the use's parameters in."""
        check_block_names(list(self.blocks))
        if self.model is not None:
            object.__setattr__(self, "model", resolve_uses(self.model, self.blocks, ("model",)))
        if self.networks is not None:
            resolved = {name: resolve_uses(layers, self.blocks, ("networks", name))
                        for name, layers in self.networks.items()}
            object.__setattr__(self, "networks", resolved)
        return self

    @model_validator(mode="after")
    def _networks(self):
        if (self.model is None) == (self.networks is None):
            raise spec_error(
                "give `model` (one layer list) or `networks` (layer lists by name), exactly one",
                hint="a single network: `model: [conv: {...}, relu, ...]`",
            )
        for name, layers in self.all_networks.items():
            if not layers:
                raise spec_error(f"network '{name}' has no layers", key=self.network_path(name))
            count = layer_count(layers)  # block uses count their bodies, times repeat
            if count > MAX_LAYERS:
                raise spec_error(
                    f"network '{name}' has {count:,} layers; modelspec builds at most {MAX_LAYERS:,}",
                    key=self.network_path(name),
                    hint="an alias (*name) repeated in a layer list repeats its layers; so does a block's repeat",
                )
        names = list(self.all_networks)
        network = self.train.network
        axes = set(self.grid) | set(self.search.space if self.search else ())
        if network is None and len(names) > 1 and "train.network" not in axes:
            raise spec_error(
                "several networks are defined; train.network must name one",
                key=("train",),
                hint="networks: " + ", ".join(names),
            )
        if network is not None and network not in names:
            raise spec_error(
                f"'{network}' names no network",
                key=("train", "network"),
                hint=did_you_mean(network, names) or "networks: " + ", ".join(names),
            )
        return self

    @model_validator(mode="after")
    def _grid_or_search(self):
        if self.grid and self.search is not None:
            raise spec_error("give `grid` or `search`, not both", key=("search",),
                             hint="a search axis `{choice: [a, b]}` covers what a grid axis lists")
        return self

    @property
    def axes(self) -> list[str]:
        """The spec paths the runs differ in: the grid's keys, or the search space's."""
        return list(self.search.space) if self.search is not None else list(self.grid)

    @property
    def all_networks(self) -> dict[str, list[LayerSpec]]:
        return {"model": self.model} if self.model is not None else dict(self.networks or {})

    @property
    def network_name(self) -> str:
        return self.train.network or next(iter(self.all_networks))

    @property
    def layers(self) -> list[LayerSpec]:
        """The layers of the network this spec trains."""
        return self.all_networks[self.network_name]

    def network_path(self, name: str) -> tuple[str, ...]:
        return ("model",) if self.model is not None else ("networks", name)

    def resolved(self) -> dict[str, Any]:
        """Plain data that validates back to this spec (stored with runs and checkpoints)."""
        return self.model_dump(mode="json")
