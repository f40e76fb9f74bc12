"""The stacked model against each run's own network, run by run.

Three runs of one network (seeds 1, 2, 3) stacked: their initial weights are the ones each run gets
when the runner trains it alone (captured from a real grid), and forward, gradients, optimizer steps
and unstacked weights match each run's own network on its own batch. What `packable` refuses, each
for the reason it gives, is checked to fail under vmap.
"""

from __future__ import annotations

from functools import lru_cache

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.dropout import _DropoutNd

from modelspec.compile import infer_shapes
from modelspec.compile.finetune import prepare_finetuning
from modelspec.load import loads_spec
from modelspec.runner import loop, run_grid
from modelspec.runner.stacked import StackedModel, StackedOptimizer, Unpackable
from modelspec.runner.stacked import model as stacked_model
from modelspec.runner.stacked.model import build_run, packable, unpackable_reason

R, N, STEPS = 3, 8, 4
SEEDS = [1, 2, 3]


def _spec(input_shape: str, layers: str) -> str:
    return f"""\
name: net
seed: 1
data:
  dataset: synthetic
  input_shape: {input_shape}
  num_classes: 4
  size: 24
  test_size: 8
  batch_size: 8
  transforms: []
model:
{layers}
train:
  epochs: 1
  optimizer: {{name: sgd, lr: 0.05}}
tracking: {{histograms: false, graph: false, images: false}}
grid:
  seed: {SEEDS}
"""


NETWORKS = {
    "mlp": _spec("[10]", """\
  - linear: {out_features: 16}
  - relu
  - linear: {out_features: num_classes}"""),
    "cnn": _spec("[2, 8, 8]", """\
  - conv: {out_channels: 4, kernel_size: 3, padding: 1}
  - relu
  - pool: {kernel_size: 2}
  - flatten
  - linear: {out_features: num_classes}"""),
    # A batch norm with a momentum stacks: its running statistics are stacked buffers. Convs before a
    # batch norm here have no bias: its true gradient is 0, so the two sides would compare rounding
    # noise elementwise (measured 6.7e-8 apart on gradients of 6.7e-8, and 1.7e-7 in `residual`).
    "cnn-batchnorm": _spec("[2, 8, 8]", """\
  - conv: {out_channels: 4, kernel_size: 3, bias: false}
  - batchnorm
  - relu
  - pool: {kernel_size: 2}
  - flatten
  - linear: {out_features: num_classes}"""),
    # Computed layer by layer without vmap (stacked/model.py: direct_layers).
    "mlp-flatten": _spec("[2, 5]", """\
  - flatten
  - linear: {out_features: 12, bias: false}
  - gelu
  - leaky_relu: {negative_slope: 0.2}
  - linear: {out_features: 8}
  - tanh
  - linear: {out_features: num_classes}"""),
    # A graph (a torch.fx GraphModule): a residual add.
    "residual": _spec("[2, 6, 6]", """\
  - conv: {out_channels: 4, kernel_size: 3, padding: 1, name: stem}
  - relu
  - conv: {out_channels: 4, kernel_size: 3, padding: 1, bias: false}
  - batchnorm: {name: main}
  - add: {from: [main, stem]}
  - global_pool
  - linear: {out_features: num_classes}"""),
}


# Networks with dropout: each run draws its own masks, the ones it draws alone.
DROPOUT = {
    "mlp-dropout": _spec("[10]", """\
  - linear: {out_features: 16}
  - relu
  - dropout: {p: 0.3}
  - linear: {out_features: num_classes}"""),
    "cnn-dropout2d": _spec("[2, 8, 8]", """\
  - conv: {out_channels: 4, kernel_size: 3, padding: 1}
  - dropout2d: {p: 0.3}
  - relu
  - pool: {kernel_size: 2}
  - flatten
  - dropout: {p: 0.5}
  - linear: {out_features: num_classes}"""),
    "residual-dropout": _spec("[2, 6, 6]", """\
  - dropout: {p: 0.2}
  - conv: {out_channels: 4, kernel_size: 3, padding: 1, name: stem}
  - relu
  - dropout2d: {p: 0.25}
  - conv: {out_channels: 4, kernel_size: 3, padding: 1, name: main}
  - add: {from: [main, stem]}
  - global_pool
  - dropout: {p: 0.4}
  - linear: {out_features: num_classes}"""),
}


@lru_cache
def _network(name: str):
    """(shapes, input shape) of a network of NETWORKS or DROPOUT."""
    spec = loads_spec((NETWORKS | DROPOUT)[name], f"{name}.yaml").runs()[0].spec
    data = spec.data
    return infer_shapes(spec.layers, tuple(data.input_shape), data.num_classes, tokens=data.tokens), tuple(data.input_shape)


def _stacked(name: str) -> tuple[StackedModel, list[torch.nn.Module], tuple]:
    shapes, input_shape = _network(name)
    stacked = StackedModel(shapes, SEEDS)
    return stacked, [build_run(shapes, seed) for seed in SEEDS], input_shape


def _batches(input_shape, steps: int = 1):
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(R, N, *input_shape, generator=g), torch.randint(0, 4, (R, N), generator=g))
            for _ in range(steps)]


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


def test_each_run_starts_from_the_weights_the_runner_gives_it_alone(tmp_path, monkeypatch):
    """`build_run`, the other tests' reference, against the runner itself (a 1-epoch grid)."""
    name = "cnn-batchnorm"  # weights, biases, running statistics, a batch count
    built = []  # each run's network as the runner builds it, before any step
    real = loop.build_from_shapes

    def spy(shapes):
        model = real(shapes)
        built.append({k: v.clone() for k, v in model.state_dict().items()})
        return model

    monkeypatch.setattr(loop, "build_from_shapes", spy)
    loaded = loads_spec(NETWORKS[name], f"{name}.yaml", [f"tracking.dir={tmp_path}"])
    assert [plan.spec.seed for plan in loaded.runs()] == SEEDS
    result = run_grid(loaded, quiet=True, log=lambda _: None)
    assert not result.failed and len(built) == R

    stacked, _, _ = _stacked(name)
    for i in range(R):
        assert stacked.unstack(i).keys() == built[i].keys()
        for k, v in stacked.unstack(i).items():
            assert torch.equal(v, built[i][k]), f"run {i} {k}"  # bit for bit
    first = stacked.keys[0]
    assert not torch.equal(stacked.unstack(0)[first], stacked.unstack(1)[first])
    assert all(p.is_leaf and p.requires_grad and p.shape[0] == R for p in stacked.params.values())


@pytest.mark.parametrize("name", NETWORKS)
def test_forward_and_gradients_are_each_runs_own(name):
    stacked, models, input_shape = _stacked(name)
    ((x, y),) = _batches(input_shape)
    out = stacked(x)  # (R, N, 4)
    assert out.shape == (R, N, 4)
    sum(F.cross_entropy(out[i], y[i]) for i in range(R)).backward()
    for i, model in enumerate(models):
        own = model(x[i])
        # A batched matmul rounds its float32 sums in another order than the run's own: measured up to
        # 2.4e-7 on these networks (the MLP was exact), so to rounding rather than bit for bit.
        assert torch.allclose(out[i], own, rtol=0, atol=1e-6), _max_diff(out[i], own)
        F.cross_entropy(own, y[i]).backward()
        for k, p in model.named_parameters():
            g = stacked.params[k].grad[i]
            assert torch.allclose(g, p.grad, rtol=1e-5, atol=1e-7), (k, _max_diff(g, p.grad))
        for k, b in model.named_buffers():  # the batch norm's running statistics, updated in place
            assert torch.allclose(stacked.buffers[k][i].float(), b.float(), rtol=1e-6, atol=1e-7), k


@pytest.mark.parametrize("name", NETWORKS)
def test_sgd_steps_train_each_run_as_it_trains_alone(name):
    stacked, models, input_shape = _stacked(name)
    lrs, momenta = [0.1, 0.03, 0.01], [0.9, 0.5, 0.0]
    runs = [{"lr": lr, "momentum": m} for lr, m in zip(lrs, momenta)]
    optimizer = StackedOptimizer(stacked.params, "sgd", runs)
    own = [torch.optim.SGD(m.parameters(), foreach=False, **run) for m, run in zip(models, runs)]
    batches = _batches(input_shape, STEPS)
    for x, y in batches:
        optimizer.zero_grad()
        out = stacked(x)
        sum(F.cross_entropy(out[i], y[i]) for i in range(R)).backward()
        optimizer.step()
        for i, (model, opt) in enumerate(zip(models, own)):
            opt.zero_grad()
            F.cross_entropy(model(x[i]), y[i]).backward()
            opt.step()
    for i, model in enumerate(models):
        for k, v in model.state_dict().items():
            mine = stacked.unstack(i)[k]
            assert torch.allclose(mine.float(), v.float(), rtol=1e-5, atol=1e-5), (i, k, _max_diff(mine, v))


@pytest.mark.parametrize("name", NETWORKS)
def test_unstacked_weights_load_into_the_runs_own_network(name):
    stacked, _, input_shape = _stacked(name)
    optimizer = StackedOptimizer(stacked.params, "sgd", [{"lr": 0.1}] * R)
    for x, y in _batches(input_shape, 2):  # moved away from the initial weights
        out = stacked(x)
        sum(F.cross_entropy(out[i], y[i]) for i in range(R)).backward()
        optimizer.step()
        optimizer.zero_grad()
    stacked.eval()
    ((x, _),) = _batches(input_shape)
    with torch.no_grad():
        out = stacked(x)
    shapes, _ = _network(name)
    for i in range(R):
        plain = build_run(shapes, seed=99).eval()
        plain.load_state_dict(stacked.unstack(i))  # strict: the run's own keys, no more
        with torch.no_grad():
            assert torch.allclose(plain(x[i]), out[i], rtol=0, atol=1e-6)
    # and back: a run's own state dict into its slot (a resumed run)
    other = build_run(shapes, seed=99).state_dict()
    stacked.load_run(1, other)
    assert all(torch.equal(stacked.unstack(1)[k], v) for k, v in other.items())
    first = stacked.keys[0]
    assert not torch.equal(stacked.unstack(0)[first], other[first])


# name: (input shape, layers, what the reason says)
REFUSED = {
    "lstm": ("[5, 3]", ["lstm: {hidden_size: 4, output: last}", "linear: {out_features: num_classes}"],
             "no batching rule"),
    "gru": ("[5, 3]", ["gru: {hidden_size: 4, output: last}", "linear: {out_features: num_classes}"],
            "no batching rule"),
    "batchnorm-cumulative": ("[10]", ["linear: {out_features: 8}", "batchnorm: {momentum: null}",
                                      "linear: {out_features: num_classes}"], "momentum: null"),
}


@pytest.mark.parametrize("name", REFUSED)
def test_packable_refuses_what_vmap_cannot_compute_as_the_run_does(name, monkeypatch):
    input_shape, layers, reason = REFUSED[name]
    spec = loads_spec(_spec(input_shape, "\n".join(f"  - {layer}" for layer in layers)), f"{name}.yaml").runs()[0].spec
    shape = tuple(spec.data.input_shape)
    said = packable(spec.layers, shape, spec.data.num_classes)
    assert said is not None and reason in said, said
    shapes = infer_shapes(spec.layers, shape, spec.data.num_classes)
    with pytest.raises(Unpackable, match=reason):
        StackedModel(shapes, SEEDS)
    # The reason is real: stacked anyway, the training forward fails under vmap.
    monkeypatch.setattr(stacked_model, "unpackable_reason", lambda model: None)
    stacked = StackedModel(shapes, SEEDS)
    with pytest.raises(RuntimeError, match="random operation|Batching rule not implemented|item"):
        stacked(torch.randn(R, N, *shape))
    stacked.eval()  # evaluating, a cumulative batch norm reads no count
    if "batchnorm" in name:
        assert stacked(torch.randn(R, N, *shape)).shape == (R, N, 4)


@pytest.mark.parametrize("name", NETWORKS)
def test_packable_accepts_the_networks_that_stack(name):
    spec = loads_spec(NETWORKS[name], f"{name}.yaml").runs()[0].spec
    assert packable(spec.layers, tuple(spec.data.input_shape), spec.data.num_classes) is None


def test_dropout_drawn_in_a_pack_is_not_the_runs_own_draw():
    """Why masks are drawn per run outside vmap rather than with vmap's randomness="different": that
    draws every run's mask from one generator, so run i's is not the mask its own seed draws alone."""
    x = torch.ones(R, 1000)
    torch.manual_seed(SEEDS[0])
    packed = torch.vmap(lambda t: F.dropout(t, 0.5), randomness="different")(x)
    for i in range(1, R):
        torch.manual_seed(SEEDS[i])
        assert not torch.equal(packed[i], F.dropout(x[i], 0.5))


# ---- dropout: each run draws its own masks, the ones it draws alone


def _record_masks(stacked: StackedModel, monkeypatch) -> list[tuple[torch.Tensor, ...]]:
    """What each training forward of `stacked` draws: per forward, per dropout call, masks (R, *noise)."""
    drawn, draw = [], stacked._draw

    def spy(x):
        drawn.append(draw(x))
        return drawn[-1]

    monkeypatch.setattr(stacked, "_draw", spy)
    return drawn


def _alone(shapes, seed: int, batches, lr: float, prepare=None):
    """Run `seed` built and trained alone with SGD: (model, generator state after the build, output
    per step, (input, output) per dropout call, generator state at the end)."""
    model = build_run(shapes, seed, prepare=prepare)
    start, calls, outs = torch.get_rng_state(), [], []
    for module in model.modules():
        if isinstance(module, _DropoutNd):
            module.register_forward_hook(lambda _, inp, out: calls.append((inp[0].detach().clone(), out.detach())))
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr, foreach=False)
    for x, y in batches:
        optimizer.zero_grad()
        out = model(x)
        F.cross_entropy(out, y).backward()
        optimizer.step()
        outs.append(out.detach())
    return model, start, outs, calls, torch.get_rng_state()


def _train(stacked: StackedModel, batches, lrs: list[float]) -> list[torch.Tensor]:
    optimizer = StackedOptimizer(stacked.params, "sgd", [{"lr": lr} for lr in lrs])
    outs = []
    for x, y in batches:
        optimizer.zero_grad()
        out = stacked(x)
        sum(F.cross_entropy(out[i], y[i]) for i in range(R)).backward()
        optimizer.step()
        outs.append(out.detach())
    return outs


def _check_against_alone(stacked, drawn, starts, outs, batches, lrs, prepare=None, name="mlp-dropout"):
    shapes, _ = _network(name)
    for i, seed in enumerate(SEEDS):
        own_batches = [(x[i], y[i]) for x, y in batches]
        model, start, own_outs, calls, end = _alone(shapes, seed, own_batches, lrs[i], prepare)
        assert torch.equal(starts[i], start)  # the generator starts where the run's build leaves torch's
        masks = [step[c][i] for step in drawn for c in range(len(step))]
        assert len(masks) == len(calls) > 0
        for c, (mask, (inp, out)) in enumerate(zip(masks, calls)):
            assert torch.equal(out, inp * mask), f"run {i} dropout call {c}"  # the run's own mask, bit for bit
            assert (mask == 0).any() and (mask != 0).any()
        assert torch.equal(stacked.rng_state(i), end)  # drew as much as the run alone, nothing else
        for step, (mine, own) in enumerate(zip(outs, own_outs)):
            assert torch.allclose(mine[i], own, rtol=0, atol=1e-6), (i, step, _max_diff(mine[i], own))
        for k, v in model.state_dict().items():
            mine = stacked.unstack(i)[k]
            assert torch.allclose(mine.float(), v.float(), rtol=1e-5, atol=1e-6), (i, k, _max_diff(mine, v))
    assert not torch.equal(drawn[0][0][0], drawn[0][0][1])  # each run its own masks


@pytest.mark.parametrize("name", DROPOUT)
def test_dropout_draws_each_runs_own_masks_as_it_trains_alone(name, monkeypatch):
    shapes, input_shape = _network(name)
    spec = loads_spec(DROPOUT[name], f"{name}.yaml").runs()[0].spec
    assert packable(spec.layers, input_shape, spec.data.num_classes) is None
    stacked = StackedModel(shapes, SEEDS)
    drawn = _record_masks(stacked, monkeypatch)
    starts = [stacked.rng_state(i) for i in range(R)]
    lrs = [0.1, 0.05, 0.02]
    batches = _batches(input_shape, STEPS)
    outs = _train(stacked, batches, lrs)
    _check_against_alone(stacked, drawn, starts, outs, batches, lrs, name=name)


@pytest.mark.parametrize("name", ["cnn-dropout2d", "residual-dropout"])
def test_evaluating_draws_no_mask(name):
    shapes, input_shape = _network(name)
    stacked = StackedModel(shapes, SEEDS).eval()
    states = [stacked.rng_state(i) for i in range(R)]
    ((x, _),) = _batches(input_shape)
    with torch.no_grad():
        out = stacked(x)
    assert all(torch.equal(stacked.rng_state(i), states[i]) for i in range(R))
    for i, seed in enumerate(SEEDS):
        with torch.no_grad():
            own = build_run(shapes, seed).eval()(x[i])
        assert torch.allclose(out[i], own, rtol=0, atol=1e-6)
    stacked.train()(x)
    assert not torch.equal(stacked.rng_state(0), states[0])  # training again, it draws


def test_rng_state_round_trip_redraws_the_same_masks(monkeypatch):
    """A resumed run's generator state (a checkpoint's) gives back the masks it drew from there."""
    shapes, input_shape = _network("cnn-dropout2d")
    stacked = StackedModel(shapes, SEEDS)
    drawn = _record_masks(stacked, monkeypatch)
    ((x, _),) = _batches(input_shape)
    saved = [stacked.rng_state(i).clone() for i in range(R)]
    with torch.no_grad():
        first = stacked(x)
        for i in range(R):
            stacked.set_rng_state(i, saved[i])
        second = stacked(x)
        assert torch.equal(first, second)
        assert all(torch.equal(a, b) for a, b in zip(drawn[0], drawn[1]))
        stacked.set_rng_state(2, saved[0])  # run 2 from run 0's state draws run 0's masks
        stacked(x)
    assert all(torch.equal(masks[2], first_masks[0]) for masks, first_masks in zip(drawn[2], drawn[0]))
    assert not torch.equal(drawn[2][0][1], drawn[0][0][1])  # and run 1 its next ones


def test_prepare_sets_each_run_up_as_alone_init_from_and_freeze(tmp_path, monkeypatch):
    """The runner's fine-tuning set-up (train.init_from, train.freeze) applied to each run's network:
    the loaded layer holds the file's weights in every run, frozen (no gradient, unmoved); the head
    is each seed's own and trains; the masks are still each run's own."""
    shapes, input_shape = _network("mlp-dropout")
    source = build_run(shapes, seed=99).state_dict()
    torch.save({k: v for k, v in source.items() if k.startswith("0.")}, tmp_path / "weights.pt")
    prepare = lambda model: prepare_finetuning(model, str(tmp_path / "weights.pt"), ["0"])
    stacked = StackedModel(shapes, SEEDS, prepare=prepare)
    assert not stacked.params["0.weight"].requires_grad and stacked.params["3.weight"].requires_grad
    for i in range(R):
        assert torch.equal(stacked.unstack(i)["0.weight"], source["0.weight"])
    assert not torch.equal(stacked.unstack(0)["3.weight"], stacked.unstack(1)["3.weight"])
    drawn = _record_masks(stacked, monkeypatch)
    starts = [stacked.rng_state(i) for i in range(R)]
    lrs = [0.1, 0.05, 0.02]
    batches = _batches(input_shape, STEPS)
    head = stacked.params["3.weight"].detach().clone()
    outs = _train(stacked, batches, lrs)
    assert stacked.params["0.weight"].grad is None and stacked.params["0.bias"].grad is None
    assert all(torch.equal(stacked.unstack(i)["0.weight"], source["0.weight"]) for i in range(R))
    assert not torch.equal(stacked.params["3.weight"], head)
    _check_against_alone(stacked, drawn, starts, outs, batches, lrs, prepare, "mlp-dropout")


def test_the_runner_draws_its_masks_from_the_state_each_run_starts_from(tmp_path, monkeypatch):
    """The premise, checked on the runner itself (a 1-epoch grid): after a run's build and fine-tuning
    set-up, torch's global generator draws only its dropout masks, so the pack's per-run generator,
    started from that state, is at each training batch where the run alone is."""
    runs: list[list] = []  # per run: the generator state after its set-up, then before each training mask
    prepare, forward = loop.prepare_finetuning, nn.Dropout.forward

    def after_prepare(model, init_from, patterns):
        counts = prepare(model, init_from, patterns)
        runs.append([(torch.get_rng_state(), None)])
        return counts

    def dropout(self, x):
        if self.training:
            runs[-1].append((torch.get_rng_state(), tuple(x.shape)))
        return forward(self, x)

    monkeypatch.setattr(loop, "prepare_finetuning", after_prepare)
    monkeypatch.setattr(nn.Dropout, "forward", dropout)
    loaded = loads_spec(DROPOUT["mlp-dropout"], "mlp-dropout.yaml", [f"tracking.dir={tmp_path}", "train.epochs=2"])
    assert not run_grid(loaded, quiet=True, log=lambda _: None).failed and len(runs) == R

    shapes, input_shape = _network("mlp-dropout")
    stacked = StackedModel(shapes, SEEDS)
    assert len(runs[0]) > 4 and all(len(calls) == len(runs[0]) for calls in runs)
    for step, (_, shape) in enumerate(runs[0]):
        for i in range(R):
            assert torch.equal(stacked.rng_state(i), runs[i][step][0]), (i, step)
        if shape is not None:  # the next batch's masks (one dropout: one draw per batch)
            stacked(torch.randn(R, shape[0], *input_shape))


class _DropoutUses(nn.Module):
    """Dropout as torch's other classes and other networks call it: channel dropout of 1-d and 3-d
    inputs, batched and not, a transposed (non-contiguous) input, one module called twice, in place,
    and p = 1. Only element-wise arithmetic, so the pack's forward is the run's bit for bit."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.randn(6, 4))
        self.d1, self.d3 = nn.Dropout1d(0.4), nn.Dropout3d(0.3)
        self.twice, self.inplace, self.all = nn.Dropout(0.5), nn.Dropout(0.3, inplace=True), nn.Dropout(1.0)

    def forward(self, x):  # (N, 6, 4)
        h = x * self.scale
        kept = h + 1
        self.inplace(kept)  # drops `kept` itself
        return (self.d1(h), self.d1(h[0]), self.d3(h.reshape(-1, 6, 2, 2, 1)), self.d3(h.reshape(-1, 6, 2, 2)),
                self.twice(self.twice(h.transpose(1, 2))), kept, self.all(h))


def test_every_exact_dropout_class_and_use_draws_the_runs_own_masks(monkeypatch):
    monkeypatch.setattr(stacked_model, "build_from_shapes", lambda shapes: _DropoutUses())
    assert unpackable_reason(_DropoutUses()) is None
    stacked = StackedModel(None, SEEDS)
    xs = [torch.randn(R, N, 6, 4) for _ in range(2)]
    outs = [stacked(x) for x in xs]
    for i, seed in enumerate(SEEDS):
        model = build_run(None, seed)
        for x, out in zip(xs, outs):
            own = model(x[i])
            for k, (mine, theirs) in enumerate(zip(out, own)):
                assert torch.equal(mine[i], theirs), (i, k)
        assert torch.equal(stacked.rng_state(i), torch.get_rng_state())
    assert (outs[0][5][0] == 0).any() and (outs[0][6] == 0).all()


@pytest.mark.parametrize("module", [nn.AlphaDropout(0.2), nn.FeatureAlphaDropout(0.2)])
def test_alpha_dropout_is_refused(module):
    said = unpackable_reason(nn.Sequential(nn.Linear(4, 4), module))
    assert said is not None and "draws a random mask" in said and type(module).__name__ in said
    assert unpackable_reason(nn.Sequential(nn.Linear(4, 4), type(module)(0.0))) is None  # p 0 draws nothing


def test_mlps_are_computed_layer_by_layer_as_vmap_computes_them():
    """An nn.Sequential of linear layers, element-wise activations, flattens and element-wise
    dropouts goes through its layers on the stacked tensors (stacked/model.py: direct_layers), without
    vmap's work per layer: vmap's outputs, bit for bit, and its gradients to rounding, with the same
    dropout masks. Any other network goes through vmap."""
    from modelspec.runner.stacked.model import direct_layers

    for name in ("cnn", "cnn-batchnorm", "residual", "cnn-dropout2d", "residual-dropout"):
        assert direct_layers(_stacked(name)[0].skeleton) is None, name
    for name in ("mlp", "mlp-flatten", "mlp-dropout"):
        stacked, _, input_shape = _stacked(name)
        assert direct_layers(stacked.skeleton) is not None, name
        ((x, y),) = _batches(input_shape)
        masks = stacked._draw(x) if stacked._has_dropout else ()
        assert len(masks) == (name == "mlp-dropout")
        outs, grads = [], []
        for forward in (stacked._direct_forward, lambda m, x: stacked._forward(stacked.params, stacked.buffers, m, x)):
            out = forward(masks, x)
            F.cross_entropy(out.flatten(0, 1), y.flatten()).backward()
            outs.append(out.detach())
            grads.append({k: p.grad for k, p in stacked.params.items()})
            stacked.zero_grad()
        assert torch.equal(outs[0], outs[1]), (name, _max_diff(outs[0], outs[1]))
        for k in grads[0]:
            assert torch.allclose(grads[0][k], grads[1][k], rtol=1e-5, atol=1e-8), (name, k)


CONVOLUTIONAL = ["cnn", "cnn-batchnorm", "residual", "cnn-dropout2d", "residual-dropout"]


@pytest.mark.parametrize("name", CONVOLUTIONAL)
def test_a_large_batch_goes_through_a_convolutional_network_run_by_run_as_each_run_alone(name, monkeypatch):
    """On the CPU a run's batch of RUN_BY_RUN_ELEMENTS input numbers or more goes through a
    convolutional network run by run (stacked/model.py: _run_by_run), each run on its slices of the
    stacked tensors: its outputs, SGD steps, weights, running statistics and dropout masks are the run's
    own, bit for bit. A smaller batch goes through vmap."""
    stacked, _, input_shape = _stacked(name)
    paths = []
    for path in ("_run_by_run", "_forward"):
        real = getattr(stacked, path)
        monkeypatch.setattr(stacked, path, lambda *a, real=real, path=path: paths.append(path) or real(*a))
    ((x, _),) = _batches(input_shape)
    assert x[0].numel() < stacked_model.RUN_BY_RUN_ELEMENTS
    stacked.eval()(x)  # in eval mode: no running statistics updated, no masks drawn
    stacked.train()
    assert paths == ["_forward"]  # the tests' small batches: vmap

    monkeypatch.setattr(stacked_model, "RUN_BY_RUN_ELEMENTS", x[0].numel())
    drawn = _record_masks(stacked, monkeypatch)
    starts = [stacked.rng_state(i) for i in range(R)]
    lrs = [0.1, 0.05, 0.02]
    batches = _batches(input_shape, STEPS)
    paths.clear()
    outs = _train(stacked, batches, lrs)
    assert paths == ["_run_by_run"] * STEPS
    shapes, _ = _network(name)
    for i, seed in enumerate(SEEDS):
        model, start, own_outs, calls, end = _alone(shapes, seed, [(x[i], y[i]) for x, y in batches], lrs[i])
        assert torch.equal(starts[i], start) and torch.equal(stacked.rng_state(i), end)
        masks = [step[c][i] for step in drawn for c in range(len(step))]
        assert len(masks) == len(calls)
        for mask, (inp, out) in zip(masks, calls):
            assert torch.equal(out, inp * mask)
        for step, (mine, own) in enumerate(zip(outs, own_outs)):
            assert torch.equal(mine[i], own), (name, i, step, _max_diff(mine[i], own))
        for k, v in model.state_dict().items():
            assert torch.equal(stacked.unstack(i)[k], v), (name, i, k, _max_diff(stacked.unstack(i)[k], v))
