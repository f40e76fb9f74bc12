"""Fine-tuning: start a network from earlier weights, and freeze some of its layers.

`load_init` reads a run folder's weights.pt (or any weights file) with weights_only=True and checks
it against the network parameter by parameter, naming the first that does not fit; layers match by
module name (a layer's `name`, else its index), so a new head under a new name starts fresh. `freeze` turns
off gradients by module name or name prefix (`backbone`, `3`, `resnet18.layer1`): frozen
parameters get no gradient, and `trainable_parameters` leaves them out of the optimizer.
"""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Iterable, Sequence

import torch
from torch import nn

from ..errors import Path, SpecError, did_you_mean
from ..fileio import WEIGHTS_FILE, safe_load
from ..spec.layers import fmt_shape
from .shapes import NetworkShapes

INIT_PATH: Path = ("train", "init_from")
FREEZE_PATH: Path = ("train", "freeze")


def _state_dict(source: str) -> dict[str, torch.Tensor]:
    path = FilePath(source).expanduser()
    if path.is_dir():
        path = path / WEIGHTS_FILE
    try:
        payload = safe_load(path, "weights file")
    except SpecError as exc:
        raise SpecError(exc.issues[0].message, path=INIT_PATH, hint=exc.issues[0].hint) from None
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SpecError(f"{path} holds no state dict", path=INIT_PATH,
                        hint="give a run folder, its weights.pt, or a file saved with torch.save(model.state_dict())")
    return state


def _layer(key: str) -> str:
    return key.split(".", 1)[0]  # the top-level module: a layer's name or index


def load_init(model: nn.Module, source: str) -> tuple[list[str], list[str]]:
    """Copy the weights at `source` into `model`, layer by layer; the first parameter whose shape
    does not fit is an error. A layer the weights lack keeps its fresh initialisation (a new head
    under a new name), and layers of the file that the network lacks are left out; both are
    returned: (fresh layers, unused layers). Weights with no layer in common are an error."""
    state = _state_dict(source)
    ours = model.state_dict()
    for key, tensor in ours.items():
        if key in state and tuple(state[key].shape) != tuple(tensor.shape):
            raise SpecError(
                f"'{key}' is {fmt_shape(tuple(tensor.shape))} in the network but {fmt_shape(tuple(state[key].shape))} "
                f"in {source}: the first layer that does not fit",
                path=INIT_PATH,
                hint="the layers must match the run the weights come from; "
                "give a new layer (a new head) its own name, so that it starts fresh",
            )
    theirs_layers = {_layer(key) for key in state}
    our_layers = {_layer(key) for key in ours}
    for key in ours:  # a layer the file has must be there whole: a partial one is a different layer
        if _layer(key) in theirs_layers and key not in state:
            raise SpecError(f"the weights in {source} have no '{key}', which the network needs",
                            path=INIT_PATH, hint=did_you_mean(key, state) or "use weights of the same network")
    if not our_layers & theirs_layers:
        raise SpecError(
            f"the weights in {source} share no layer with the network (theirs: {', '.join(sorted(theirs_layers)[:5])})",
            path=INIT_PATH,
            hint="layers match by name, or by index where they have none",
        )
    model.load_state_dict({k: v for k, v in state.items() if k in ours}, strict=False)
    return sorted(our_layers - theirs_layers), sorted(theirs_layers - our_layers)


def _matches(name: str, pattern: str) -> bool:
    return name == pattern or name.startswith(pattern + ".")


def freeze(model: nn.Module, patterns: Sequence[str]) -> tuple[int, int]:
    """Freeze the parameters under each pattern (a module name or prefix); (trainable, frozen) counts."""
    names = [name for name, _ in model.named_parameters()]
    for index, pattern in enumerate(patterns):
        if not any(_matches(name, pattern) for name in names):
            modules = [name for name, _ in model.named_modules() if name]
            raise SpecError(
                f"'{pattern}' names no layer with parameters",
                path=FREEZE_PATH + (index,),
                hint=did_you_mean(pattern, modules) or "layers: " + ", ".join(n for n in modules if "." not in n),
            )
    for name, parameter in model.named_parameters():
        if any(_matches(name, pattern) for pattern in patterns):
            parameter.requires_grad_(False)
    trainable, frozen = parameter_counts(model)
    if patterns and not trainable:  # a nested pattern that covers it all, which `check_freeze` cannot see
        raise _all_frozen(frozen)
    return trainable, frozen


def check_freeze(patterns: Sequence[str], shapes: NetworkShapes) -> None:
    """At validate time, from the shapes alone: each pattern's first part names a layer with
    parameters, and some parameters stay trainable (else the optimizer gets none, and the run fails
    after its data were prepared). A pattern into a layer (`resnet18.layer1`) is checked when built."""
    counts = {row.key: row.parameters for row in shapes.layers}
    holders = [key for key, count in counts.items() if count]
    for index, pattern in enumerate(patterns):
        if not counts.get(pattern.split(".", 1)[0]):
            raise SpecError(f"'{pattern}' names no layer with parameters", path=FREEZE_PATH + (index,),
                            hint=did_you_mean(pattern, holders) or "layers with parameters: " + ", ".join(holders))
    if holders and all(key in patterns for key in holders):
        raise _all_frozen(sum(counts.values()))


def _all_frozen(count: int) -> SpecError:
    return SpecError(f"freezes every parameter of the network ({count:,}): nothing would be left to train",
                     path=FREEZE_PATH, hint="leave at least one layer (a head) out of train.freeze")


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """(trainable, frozen) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters()) - trainable


def trainable_parameters(model: nn.Module) -> Iterable[nn.Parameter]:
    """What the optimizer gets: frozen parameters are left out (weight decay cannot move them)."""
    return [p for p in model.parameters() if p.requires_grad]


def prepare_finetuning(model: nn.Module, init_from: str | None, patterns: Sequence[str]) -> tuple[int, int]:
    """The train section's init_from and freeze, applied to a freshly built model."""
    if init_from is not None:
        load_init(model, init_from)
    return freeze(model, patterns)
