"""R runs' copies of one network as one model: parameters stacked along a first dim (R, *shape).

Each copy is built as the run alone builds it (`loop.py`: `seed_everything(seed)`, then
`build_from_shapes(shapes)`, then `prepare(model)` where the runner passes its fine-tuning set-up:
`init_from` weights and frozen layers), so run i's initial weights are its own, bit for bit. They are
stacked into leaf tensors as `torch.func.stack_module_state` stacks them (`_stack`: that function also
insists on one Python class, which graph networks never share: torch.fx makes a GraphModule's class
per build), and one skeleton of the network (on the meta device: it holds no numbers) computes every
run at once through `functional_call` under `vmap`, each run on its own batch. An MLP (`direct_layers`:
linear layers, element-wise activations, flattens, dropouts) goes through its layers on the stacked
tensors instead, a batched matmul a linear layer as vmap computes it, without vmap's work per layer
(a third of a tiny MLP's forward and backward).

On the CPU a convolutional network goes run by run once a run's batch holds RUN_BY_RUN_ELEMENTS input
numbers: each run's network through `functional_call` on its slices of the stacked tensors (views: a
batch norm's running statistics update in place), the outputs stacked. vmap computes a convolution of
R runs as one grouped convolution, which on the CPU costs more than the runs' own calls where the
batch is large (fashion_bn: 1.25-1.7 times); where it is small, vmap's one call a layer saves more.

What vmap computes is each run's forward to rounding, not bit for bit: a linear layer over a batch of
runs is one batched matmul, whose float32 sums round in another order than the run's own matmul (the
tests measure up to 2.4e-7; an MLP's came out exact). Run by run, each run's forward and gradients are
its own, bit for bit.

Dropout (`nn.Dropout`, `Dropout1d/2d/3d`) draws each run's own masks. Every run keeps a generator
whose state starts where torch's global generator is after that run's build, the state from which
the run alone draws its masks: after the build nothing else draws from it while training. In the
skeleton each dropout module is replaced by `_Dropout`, which multiplies by a mask handed in; before
each training forward, a pass on the meta device finds every dropout call's input (cached per input
shape), and run i's masks are drawn from its generator as ATen's CPU dropout draws them
(`empty_like(input).bernoulli_(1 - p).div_(1 - p)`, of shape (N, C, 1, ...) for channel dropout), in
forward order. On the CPU they are the run's own masks bit for bit. On another device each run's
generator lives there and draws its own masks, but not the ones the run alone draws: CUDA's fused
dropout kernel draws differently.

What a stacked forward cannot compute as the run alone does, `packable` refuses, with why:
- alpha dropout (`AlphaDropout`, `FeatureAlphaDropout`), or a dropout class of its own: the pack only
  draws torch's plain and channel dropout masks;
- a recurrent layer (`nn.RNNBase`): vmap has no batching rule for `aten::lstm`/`gru`/`rnn_*`;
- a batch or instance norm keeping running statistics with `momentum: null` (a cumulative average):
  torch reads the batch count as a Python number (`.item()`), which vmap cannot do per run.
A batch norm with a momentum stacks: its running statistics are buffers stacked like the weights,
updated in place per run under vmap (to rounding, as its output). Any other random operation fails
under vmap (`randomness="error"`) rather than draw masks that are not the run's.
"""

from __future__ import annotations

import contextlib
import copy
from collections import OrderedDict
from collections.abc import Callable, Sequence

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

# A run's batch of at least this many input numbers goes run by run through a convolutional network on
# the CPU (measured, R runs' steps: 128 images of 16x16 a run, 44 ms against vmap's 65 at R=16, 179
# against 228 at R=64; 64 such images, 113 against vmap's 106 at R=64).
RUN_BY_RUN_ELEMENTS = 25_000

# The dropout classes drawn exactly: for channel dropout, the input rank torch reads as one sample
# without a batch dim (dropout1d/3d add one, dropout2d never does); None for element-wise dropout.
_EXACT: dict[type, tuple[bool, int | None]] = {
    nn.Dropout: (False, None), nn.Dropout1d: (True, 2), nn.Dropout2d: (True, None), nn.Dropout3d: (True, 4),
}


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
        if isinstance(module, _DropoutNd) and module.p > 0 and type(module) not in _EXACT:
            return (f"{where} draws a random mask that the pack cannot draw as the run does alone "
                    "(it draws those of nn.Dropout and nn.Dropout1d/2d/3d)")
        if isinstance(module, nn.RNNBase):
            return f"{where}: vmap has no batching rule for torch's recurrent kernels"
        if isinstance(module, _NormBase) and module.track_running_stats and module.momentum is None:
            return (f"{where} keeps a cumulative average (momentum: null), which reads each run's batch "
                    "count as a Python number; give it a momentum (torch's default is 0.1) to stack it")
    return None


def build_run(shapes: NetworkShapes, seed: int, device: torch.device | str = "cpu",
              prepare: Callable[[nn.Module], object] | None = None) -> nn.Module:
    """Run `seed`'s untrained network, as the run alone builds it (loop.py), `prepare` (fine-tuning:
    init_from, freeze) applied — and the global random generators left as that leaves them."""
    seed_everything(seed)
    model = build_from_shapes(shapes).to(device)
    if prepare is not None:
        prepare(model)
    return model


def _dropout_generator(device: torch.device) -> torch.Generator:
    """A generator in the state of the one the run alone draws its dropout masks from, now."""
    generator = torch.Generator(device=device)
    if device.type == "cpu":
        generator.set_state(torch.get_rng_state())
    elif device.type == "cuda":
        generator.set_state(torch.cuda.get_rng_state(device))
    else:
        generator.manual_seed(torch.initial_seed())  # seed_everything seeded it; the build draws on the CPU
    return generator


def _stack(models: list[nn.Module]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Each parameter and buffer of R copies of one network as one tensor (R, *shape): a parameter a
    leaf that requires grad where the copies' do (a frozen one does not), as stack_module_state gives."""
    params = {name: torch.stack([m.get_parameter(name).detach() for m in models]).requires_grad_(p.requires_grad)
              for name, p in models[0].named_parameters()}
    buffers = {name: torch.stack([m.get_buffer(name) for m in models]) for name, _ in models[0].named_buffers()}
    return params, buffers


class _Masks:
    """Hands each dropout call of one forward its mask, in call order (a module called twice takes
    two). In the shape pass (`seen` a list) it records what each call would draw instead."""

    def __init__(self):
        self.given: tuple[Tensor, ...] = ()
        self.next = 0
        self.seen: list[tuple[float, Tensor]] | None = None

    def give(self, masks: tuple[Tensor, ...]) -> None:
        self.given, self.next = masks, 0

    def take(self, dropout: _Dropout, x: Tensor) -> Tensor:
        if self.seen is not None:  # the shape pass: x is on the meta device
            self.seen.append((dropout.p, dropout.noise_like(x)))
            return x
        if self.next >= len(self.given):
            raise RuntimeError("a dropout was called more times than the shape pass saw: no mask left for it")
        mask = self.given[self.next]
        self.next += 1
        if mask.shape != dropout.noise_shape(x.shape):
            raise RuntimeError(f"dropout mask {tuple(mask.shape)} does not fit its input {tuple(x.shape)}")
        mask = mask.to(x.dtype)  # under autocast the shape pass (no autocast) saw float32: keep x's dtype
        return x.mul_(mask) if dropout.inplace else x * mask


class _Dropout(nn.Module):
    """Stands in for a dropout module in the skeleton: multiplies by the mask `masks` hands it, drawn
    before the vmapped forward. Without a draw it does what ATen's dropout does (p 0 or 1, eval)."""

    def __init__(self, dropout: _DropoutNd, masks: _Masks):
        super().__init__()
        self.p, self.inplace, self.masks = float(dropout.p), dropout.inplace, masks
        self.channels, self.unbatched_rank = _EXACT[type(dropout)]

    def noise_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        """ATen's noise for an input of `shape`: its own shape, or (N, C, 1, ...) for channel dropout
        (an unbatched (C, ...) input is given a batch dim of 1 first, then squeezed)."""
        if not self.channels:
            return tuple(shape)
        if len(shape) < 2:
            raise RuntimeError(f"channel dropout needs at least 2 dims; received {tuple(shape)}")
        keep = 1 if len(shape) == self.unbatched_rank else 2
        return (*shape[:keep], *(1,) * (len(shape) - keep))

    def noise_like(self, x: Tensor) -> Tensor:
        """An empty tensor as ATen allocates the noise: `empty_like` keeps the input's strides (the CPU
        bernoulli fills in memory order), channel noise is contiguous."""
        return torch.empty_like(x) if not self.channels else x.new_empty(self.noise_shape(x.shape))

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0 or x.numel() == 0:
            return x
        if self.p == 1:  # torch multiplies by zero and draws nothing
            zero = torch.zeros((), dtype=x.dtype, device=x.device)
            return x.mul_(zero) if self.inplace else x * zero
        return self.masks.take(self, x)


def _replace_dropouts(skeleton: nn.Module, masks: _Masks) -> bool:
    """Every dropout module of the skeleton replaced by its `_Dropout` (a shared one once, everywhere
    it is used); whether there was one."""
    stand_ins: dict[int, _Dropout] = {}
    for name, module in list(skeleton.named_modules(remove_duplicate=False)):
        if isinstance(module, _DropoutNd):
            stand_in = stand_ins.setdefault(id(module), _Dropout(module, masks))
            skeleton.set_submodule(name, stand_in)
    return bool(stand_ins)


# Modules that compute each element alone, whatever the shape: the stacked (R, N, ...) tensor goes
# through the module itself, as every run's batch would.
_ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Softplus, nn.Mish,
                nn.Hardswish, nn.Hardtanh, nn.Identity)


def _stacked_linear(params: dict[str, Tensor], prefix: str, x: Tensor) -> Tensor:
    """The nn.Linear at `prefix`, each run's weight (R, out, in) on its batch (R, N, ..., in): one
    batched matmul, the bias added in it, as vmap computes the layer."""
    weight, bias = params[prefix + "weight"], params.get(prefix + "bias")
    rows = x.reshape(x.shape[0], -1, x.shape[-1])
    out = (torch.baddbmm(bias.unsqueeze(1), rows, weight.transpose(1, 2)) if bias is not None else
           torch.bmm(rows, weight.transpose(1, 2)))
    return out.view(*x.shape[:-1], weight.shape[1])


def _stacked_flatten(module: nn.Flatten, x: Tensor) -> Tensor:
    """nn.Flatten of each run's batch: its dims one further in, past the runs' dim."""
    shift = lambda dim: dim + 1 if dim >= 0 else dim  # noqa: E731
    return x.flatten(shift(module.start_dim), shift(module.end_dim))


def direct_layers(skeleton: nn.Module) -> list[tuple[str, nn.Module]] | None:
    """The layers of a network a stacked forward computes without vmap: an nn.Sequential of linear
    layers, element-wise activations, flattens and element-wise dropouts (a tiny MLP, where vmap's
    own work per layer costs a third of the forward and backward). None for any other network."""
    if type(skeleton) is not nn.Sequential:
        return None
    layers = list(skeleton.named_children())
    for _, module in layers:
        if not (type(module) in (nn.Linear, nn.Flatten, *_ELEMENTWISE)
                or isinstance(module, _Dropout) and not module.channels):
            return None
    return layers


class StackedModel:
    """R copies of one network, run i seeded with `seeds[i]`; `params` is what `StackedOptimizer` takes.

    `forward(x)` takes a batch per run, x: (R, N, *input), and gives (R, N, *output). Parameters are
    leaves (R, *shape) that collect gradients as any module's do (a frozen one is a leaf without
    grad); buffers (batch-norm statistics) are stacked alike and updated in place by a forward in
    training mode. `prepare(model)` is applied to each run's freshly built network, as the run alone
    applies its fine-tuning set-up. A forward in training mode draws each run's dropout masks from
    its own generator; `rng_state(i)`/`set_rng_state(i, state)` read and restore that generator."""

    def __init__(self, shapes: NetworkShapes, seeds: Sequence[int], device: torch.device | str = "cpu",
                 prepare: Callable[[nn.Module], object] | None = None):
        self.device = torch.device(device)
        models, self.generators = [], []
        for seed in seeds:
            models.append(build_run(shapes, seed, self.device, prepare))
            self.generators.append(_dropout_generator(self.device))  # before another run's build reseeds
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
        self._masks = _Masks()
        self._has_dropout = _replace_dropouts(self.skeleton, self._masks)
        self._draws: dict[tuple, list[tuple[float, Tensor]]] = {}  # per-run input (shape, dtype): the draws
        self._forward = vmap(self._one, in_dims=(0, 0, 0, 0), randomness="error")
        self._direct = direct_layers(self.skeleton)
        self._convolves = self.device.type == "cpu" and any(
            isinstance(module, nn.modules.conv._ConvNd) for module in self.skeleton.modules())

    @contextlib.contextmanager
    def _giving(self, masks: tuple[Tensor, ...]):
        """The dropout masks of one forward, handed to its dropout calls in order; each must be used."""
        self._masks.give(masks)
        try:
            yield
        finally:
            given, self._masks.given = self._masks.given, ()
        if self._masks.next != len(given):
            raise RuntimeError(f"the forward used {self._masks.next} of {len(given)} dropout masks")

    def _one(self, params: dict[str, Tensor], buffers: dict[str, Tensor], masks: tuple[Tensor, ...],
             x: Tensor) -> Tensor:
        with self._giving(masks):
            # No tied weights to look for each call: a network with any is refused (see __init__).
            return functional_call(self.skeleton, (params, buffers), (x,), tie_weights=False)

    def forward(self, x: Tensor) -> Tensor:
        """(R, N, *input) -> (R, N, *output): run i's network on its batch x[i]."""
        masks = self._draw(x) if self.training and self._has_dropout else ()
        if self._direct is not None:
            return self._direct_forward(masks, x)
        if self._convolves and x[0].numel() >= RUN_BY_RUN_ELEMENTS:
            return self._run_by_run(masks, x)
        return self._forward(self.params, self.buffers, masks, x)

    def _run_by_run(self, masks: tuple[Tensor, ...], x: Tensor) -> Tensor:
        """Each run's network on its batch in turn, on its slices of the stacked tensors (unbind: one
        stack of the gradients in the backward pass), with its dropout masks; the outputs stacked."""
        params = {k: v.unbind(0) for k, v in self.params.items()}
        buffers = {k: v.unbind(0) for k, v in self.buffers.items()}
        return torch.stack([self._one({k: v[i] for k, v in params.items()}, {k: v[i] for k, v in buffers.items()},
                                      tuple(mask[i] for mask in masks), x[i]) for i in range(self.R)])

    def _direct_forward(self, masks: tuple[Tensor, ...], x: Tensor) -> Tensor:
        """What the vmapped forward computes, layer by layer on the stacked tensors (`direct_layers`):
        the same outputs, gradients to rounding. A dropout multiplies by its stacked masks (R, N, ...)."""
        with self._giving(masks):
            for name, module in self._direct:
                if type(module) is nn.Linear:
                    x = _stacked_linear(self.params, name + ".", x)
                elif type(module) is nn.Flatten:
                    x = _stacked_flatten(module, x)
                else:
                    x = module(x)
        return x

    __call__ = forward

    @torch.no_grad()
    def _draw(self, x: Tensor) -> tuple[Tensor, ...]:
        """Each dropout call's masks (R, *noise), run i's from its generator in forward order, as
        ATen's CPU dropout draws the run's own: one `bernoulli_` per run and call."""
        key = (tuple(x.shape[1:]), x.dtype)
        if key not in self._draws:  # a shape pass: the skeleton on one run's batch, on the meta device
            self._masks.seen = []
            try:
                self.skeleton(torch.empty(key[0], dtype=x.dtype, device="meta"))
                self._draws[key] = self._masks.seen
            finally:
                self._masks.seen = None
        return tuple(torch.stack([torch.empty_like(like, device=self.device).bernoulli_(1 - p, generator=g).div_(1 - p)
                                  for g in self.generators])
                     for p, like in self._draws[key])

    def rng_state(self, i: int) -> Tensor:
        """Run i's dropout generator state: on the CPU, `torch.get_rng_state()` of the run alone now."""
        return self.generators[i].get_state()

    def set_rng_state(self, i: int, state: Tensor) -> None:
        """Run i's dropout generator from a saved state (a resumed run)."""
        self.generators[i].set_state(state)

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
