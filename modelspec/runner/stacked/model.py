"""R runs' copies of one network as one model: parameters stacked along a first dim (R, *shape).

Each copy is built as the run alone builds it (`loop.py`: `seed_everything(seed)`, then
`build_from_shapes(shapes)`, with nothing between that draws from torch's global generator), so run i's
initial weights are its own, bit for bit. They are stacked into leaf tensors as
`torch.func.stack_module_state` stacks them (`_stack`: that function also insists on one Python
class, which graph networks never share: torch.fx makes a GraphModule's class per build), and one
skeleton of the network (on the meta device: it holds no numbers) computes every run at once through
`functional_call` under `vmap`, each run on its own batch.

What vmap computes is each run's forward to rounding, not bit for bit: a linear layer over a batch of
runs is one batched matmul, whose float32 sums round in another order than the run's own matmul (the
tests measure up to 2.4e-7; an MLP's came out exact). What it cannot compute as the run alone does,
`packable` refuses, with why:
- dropout (any `_DropoutNd`, p > 0): under vmap every run draws its mask from the pack's one generator
  (`randomness="different"`), not the draw the run makes from its own seed alone;
- a recurrent layer (`nn.RNNBase`): vmap has no batching rule for `aten::lstm`/`gru`/`rnn_*`;
- a batch or instance norm keeping running statistics with `momentum: null` (a cumulative average):
  torch reads the batch count as a Python number (`.item()`), which vmap cannot do per run.
A batch norm with a momentum stacks: its running statistics are buffers stacked like the weights,
updated in place per run under vmap (to rounding, as its output).
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap
from torch.nn.modules.batchnorm import _NormBase
from torch.nn.modules.dropout import _DropoutNd

from ...compile import build_from_shapes, build_model
from ...compile.shapes import NetworkShapes
from ...spec.layers import LayerSpec, Shape
from ..device import seed_everything
from .optim import Unpackable


def packable(layers: list[LayerSpec], input_shape: Shape, num_classes: int | None = None, *,
             tokens: bool = False) -> str | None:
    """Why this network cannot train stacked exactly as each run trains alone, or None if it can.
    Takes `build_model`'s arguments; the network is built on the meta device (no weights)."""
    with torch.device("meta"):
        return unpackable_reason(build_model(layers, input_shape, num_classes, tokens=tokens))


def unpackable_reason(model: nn.Module) -> str | None:
    """The first module of a built network that a stacked forward cannot compute as the run does."""
    for name, module in model.named_modules():
        where = f"layer {name!r} ({type(module).__name__})"
        if isinstance(module, _DropoutNd) and module.p > 0:
            return (f"{where} draws a random mask: stacked, each run's mask would come from the pack's one "
                    "generator, not from the run's own seed")
        if isinstance(module, nn.RNNBase):
            return f"{where}: vmap has no batching rule for torch's recurrent kernels"
        if isinstance(module, _NormBase) and module.track_running_stats and module.momentum is None:
            return (f"{where} keeps a cumulative average (momentum: null), which reads each run's batch "
                    "count as a Python number; give it a momentum (torch's default is 0.1) to stack it")
    return None


def build_run(shapes: NetworkShapes, seed: int, device: torch.device | str = "cpu") -> nn.Module:
    """Run `seed`'s untrained network, as the run alone builds it (loop.py) — and the global random
    generators left as that build leaves them."""
    seed_everything(seed)
    return build_from_shapes(shapes).to(device)


def _stack(models: list[nn.Module]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Each parameter and buffer of R copies of one network as one tensor (R, *shape): a parameter a
    leaf that requires grad where the copies' do (a frozen one does not), as stack_module_state gives."""
    params = {name: torch.stack([m.get_parameter(name).detach() for m in models]).requires_grad_(p.requires_grad)
              for name, p in models[0].named_parameters()}
    buffers = {name: torch.stack([m.get_buffer(name) for m in models]) for name, _ in models[0].named_buffers()}
    return params, buffers


class StackedModel:
    """R copies of one network, run i seeded with `seeds[i]`; `params` is what `StackedOptimizer` takes.

    `forward(x)` takes a batch per run, x: (R, N, *input), and gives (R, N, *output). Parameters are
    leaves (R, *shape) that collect gradients as any module's do; buffers (batch-norm statistics) are
    stacked alike and updated in place by a forward in training mode."""

    def __init__(self, shapes: NetworkShapes, seeds: Sequence[int], device: torch.device | str = "cpu"):
        models = [build_run(shapes, seed, device) for seed in seeds]
        reason = unpackable_reason(models[0])
        if reason is not None:
            raise Unpackable(reason)
        self.R = len(models)
        self.keys = list(models[0].state_dict())  # the run's state dict order, for unstack
        self.params, self.buffers = _stack(models)
        missing = set(self.keys) - set(self.params) - set(self.buffers)
        if missing:  # a tied weight appears once in named_parameters: unstack could not give it back
            raise Unpackable(f"{sorted(missing)} share storage with another weight; these runs train one at a time")
        self.skeleton = copy.deepcopy(models[0]).to("meta")  # computes only: every tensor is passed in
        self._forward = vmap(self._one, in_dims=(0, 0, 0), randomness="error")

    def _one(self, params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_call(self.skeleton, (params, buffers), (x,))

    def forward(self, x: Tensor) -> Tensor:
        """(R, N, *input) -> (R, N, *output): run i's network on its batch x[i]."""
        return self._forward(self.params, self.buffers, x)

    __call__ = forward

    def train(self, mode: bool = True) -> StackedModel:
        self.skeleton.train(mode)
        return self

    def eval(self) -> StackedModel:
        return self.train(False)

    @property
    def training(self) -> bool:
        return self.skeleton.training

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None

    @torch.no_grad()
    def unstack(self, i: int) -> OrderedDict[str, Tensor]:
        """Run i's weights as the state dict of its own network (a copy: training goes on without it)."""
        stacked = self.params | self.buffers
        return OrderedDict((k, stacked[k][i].detach().clone()) for k in self.keys)

    @torch.no_grad()
    def load_run(self, i: int, state_dict: dict[str, Tensor]) -> None:
        """The reverse of `unstack`: run i's slot from its own network's state dict (a resumed run)."""
        stacked = self.params | self.buffers
        if set(state_dict) != set(self.keys):
            raise ValueError(f"run {i}'s state dict has keys {sorted(state_dict)}; the network has {self.keys}")
        for k in self.keys:
            stacked[k][i].copy_(state_dict[k])
