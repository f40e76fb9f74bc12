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

from modelspec.compile import infer_shapes
from modelspec.load import loads_spec
from modelspec.runner import loop, run_grid
from modelspec.runner.stacked import StackedModel, StackedOptimizer, Unpackable
from modelspec.runner.stacked import model as stacked_model
from modelspec.runner.stacked.model import build_run, packable

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


@lru_cache
def _network(name: str):
    """(shapes, input shape) of a network of NETWORKS."""
    spec = loads_spec(NETWORKS[name], f"{name}.yaml").runs()[0].spec
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
    "dropout": ("[10]", ["linear: {out_features: 8}", "dropout: {p: 0.2}", "linear: {out_features: num_classes}"],
                "draws a random mask"),
    "dropout2d": ("[2, 6, 6]", ["conv: {out_channels: 3, kernel_size: 3}", "dropout2d: {p: 0.2}", "flatten",
                                "linear: {out_features: num_classes}"], "draws a random mask"),
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
    # The reason is real: stacked anyway, the training forward fails under vmap (dropout: it draws
    # random numbers, which the pack's vmap refuses rather than draw other masks than the runs').
    monkeypatch.setattr(stacked_model, "unpackable_reason", lambda model: None)
    stacked = StackedModel(shapes, SEEDS)
    with pytest.raises(RuntimeError, match="random operation|Batching rule not implemented|item"):
        stacked(torch.randn(R, N, *shape))
    stacked.eval()  # evaluating, dropout is the identity and a cumulative batch norm reads no count
    if "dropout" in name or "batchnorm" in name:
        assert stacked(torch.randn(R, N, *shape)).shape == (R, N, 4)


@pytest.mark.parametrize("name", NETWORKS)
def test_packable_accepts_the_networks_that_stack(name):
    spec = loads_spec(NETWORKS[name], f"{name}.yaml").runs()[0].spec
    assert packable(spec.layers, tuple(spec.data.input_shape), spec.data.num_classes) is None


def test_dropout_drawn_in_a_pack_is_not_the_runs_own_draw():
    """Why dropout is refused rather than stacked with vmap's randomness="different": the pack draws
    every run's mask from one generator, so run i's is not the mask its own seed draws alone."""
    x = torch.ones(R, 1000)
    torch.manual_seed(SEEDS[0])
    packed = torch.vmap(lambda t: F.dropout(t, 0.5), randomness="different")(x)
    for i in range(1, R):
        torch.manual_seed(SEEDS[i])
        assert not torch.equal(packed[i], F.dropout(x[i], 0.5))
