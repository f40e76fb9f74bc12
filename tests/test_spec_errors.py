"""Invalid specs: each is refused with a located message (file:line, spec path, what and a hint).

Every case is a small YAML text loaded as `bad.yaml`; the expected issue names the line it is on, the
spec path as the user would write it, and a phrase of its message or hint.
"""

from __future__ import annotations

from textwrap import dedent

import pytest

from modelspec.errors import SpecError, format_path
from modelspec.load import load_spec, loads_spec

# Two lines every case below starts with: the model begins on line 3.
HEAD = "name: t\ndata: {dataset: fashion_mnist}\n"
MLP = HEAD + "model: [flatten, {linear: {out_features: 10}}]\n"  # a valid spec of three lines


def case(id: str, text: str, where: str, path: str, phrase: str, *overrides: str):
    return pytest.param(dedent(text), overrides, where, path, phrase, id=id)


CASES = [
    # ---- YAML itself
    case("yaml-syntax", HEAD + "model: [flatten, {linear: {out_features: 10}]\n",
         "bad.yaml:3", "<root>", "not valid YAML"),
    case("yaml-indentation", "name: t\n  data: x\n", "bad.yaml:2", "<root>", "not valid YAML"),
    case("yaml-two-documents", MLP + "---\nname: u\n", "bad.yaml:4", "<root>", "single document"),
    case("root-is-a-list", "- name: t\n- data: x\n", "bad.yaml:1", "<root>", "a list, not a mapping"),
    case("root-is-a-number", "42\n", "bad.yaml:1", "<root>", "a number, not a mapping"),
    case("empty-file", "", "bad.yaml", "<root>", "the spec is empty"),
    case("only-comments", "# nothing yet\n", "bad.yaml", "<root>", "the spec is empty"),
    case("duplicate-key", HEAD + "name: u\nmodel: [flatten]\n", "bad.yaml:3", "name", "appears twice"),
    case("python-object-tag", "name: !!python/object/apply:os.system [ls]\n",
         "bad.yaml:1", "<root>", "tags such as !!python/object are not allowed"),
    case("alias-bomb", """\
        a: &a [x, x, x, x, x, x, x, x, x, x]
        b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
        c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
        d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
        e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
        """, "bad.yaml:5", "e", "YAML bomb"),
    case("too-deep", "name: t\ndata:\n  a: " + "[" * 60 + "]" * 60 + "\n",
         "bad.yaml:3", "<root>", "nested more than 40 levels deep"),
    case("self-referencing-alias", "name: t\ndata: &d {a: *d}\n", "bad.yaml:2", "data", "nested more than"),
    case("number-key", MLP + "1: one\n", "bad.yaml:4", "<root>", "a key must be a name"),
    case("integer-beyond-64-bits", HEAD + "seed: 1" + "0" * 40 + "\nmodel: [flatten]\n",
         "bad.yaml:3", "seed", "fit in 64 bits"),
    # ---- keys and types
    case("missing-data", "name: t\nmodel: [flatten]\n", "bad.yaml:1", "data", "missing required key 'data'"),
    case("unknown-top-key", HEAD + "modle: [flatten]\n", "bad.yaml:3", "modle", "did you mean 'model'?"),
    case("unknown-layer-key", HEAD + dedent("""\
        model:
          - conv: {out_channel: 6, kernel_size: 5}
        """), "bad.yaml:4", "model[0].conv.out_channel", "did you mean 'out_channels'?"),
    case("unknown-data-key", "name: t\ndata: {dataset: mnist, batchsize: 8}\nmodel: [flatten]\n",
         "bad.yaml:2", "data.batchsize", "did you mean 'batch_size'?"),
    case("string-for-integer", "name: t\ndata: {dataset: mnist, batch_size: ten}\nmodel: [flatten]\n",
         "bad.yaml:2", "data.batch_size", "received 'ten'"),
    case("float-for-integer", HEAD + dedent("""\
        model:
          - conv: {out_channels: 6, kernel_size: 2.5}
        """), "bad.yaml:4", "model[0].conv.kernel_size", "received 2.5"),
    case("negative-size", HEAD + "model: [flatten, {linear: {out_features: -3}}]\n",
         "bad.yaml:3", "model[1].linear.out_features", "greater than 0"),
    case("negative-seed", HEAD + "seed: -1\nmodel: [flatten]\n", "bad.yaml:3", "seed", "greater than or equal to 0"),
    case("infinite-lr", MLP + "train: {optimizer: {lr: .inf}}\n",
         "bad.yaml:4", "train.optimizer.lr", "finite number"),
    case("model-and-networks", MLP + "networks: {a: [flatten]}\n", "bad.yaml:1", "<root>", "exactly one"),
    case("two-networks-none-picked", HEAD + "networks: {a: [flatten], b: [flatten]}\n",
         "bad.yaml:1", "train", "train.network must name one"),
    case("train-network-names-none", HEAD + dedent("""\
        networks:
          small: [flatten, {linear: {out_features: 10}}]
        train: {network: smal}
        """), "bad.yaml:5", "train.network", "did you mean 'small'?"),
    # ---- names, with suggestions
    case("unknown-layer", HEAD + "model: [flaten, {linear: {out_features: 10}}]\n",
         "bad.yaml:3", "model[0]", "did you mean 'flatten'?"),
    case("unknown-optimizer", MLP + "train: {optimizer: adamm}\n", "bad.yaml:4", "train.optimizer", "'adam'"),
    case("unknown-loss", MLP + "train: {loss: cross_entropi}\n", "bad.yaml:4", "train.loss", "'cross_entropy'"),
    case("unknown-dataset", "name: t\ndata: {dataset: fashion_mnst}\nmodel: [flatten]\n",
         "bad.yaml:2", "data.dataset", "did you mean 'fashion_mnist'?"),
    case("unknown-transform", "name: t\ndata: {dataset: mnist, transforms: [to_tensr]}\nmodel: [flatten]\n",
         "bad.yaml:2", "data.transforms[0]", "did you mean 'to_tensor'?"),
    case("unknown-scheduler", MLP + "train: {scheduler: cosin}\n", "bad.yaml:4", "train.scheduler", "'cosine'"),
    # ---- optimizer, loss and scheduler arguments, against the torch signature
    case("optimizer-kwarg", MLP + "train:\n  optimizer: {name: adam, beta: 0.9}\n",
         "bad.yaml:5", "train.optimizer.beta", "did you mean 'betas'?"),
    case("optimizer-kwarg-type", MLP + "train:\n  optimizer: {name: adam, betas: [0.9, fast]}\n",
         "bad.yaml:5", "train.optimizer.betas", "a list of 2 numbers"),
    case("loss-kwarg", MLP + "train:\n  loss: {name: cross_entropy, weigth: [1, 2]}\n",
         "bad.yaml:5", "train.loss.weigth", "did you mean 'weight'?"),
    # ---- tasks: the loss against the data's targets and the head, metrics, monitor
    case("bce-on-ten-classes", MLP + "train: {loss: bce_with_logits}\n", "bad.yaml:4", "train.loss",
         "bce_with_logits is binary or multi-label, but the data has 10 classes"),
    case("bce-head-width", "name: t\ndata: {dataset: synthetic, input_shape: [4], num_classes: 2}\n"
         "model: [{linear: {out_features: 10}}]\ntrain: {loss: bce_with_logits}\n", "bad.yaml:3",
         "model[0].linear", "needs 1 output per sample (binary) or one per label; the network ends in 10"),
    case("regression-loss-on-classes", MLP + "train: {loss: mse}\n", "bad.yaml:4", "train.loss",
         "mse trains on real values, but the data's targets are class labels"),
    case("class-weight-length", MLP + "train:\n  loss: {name: cross_entropy, weight: [1.0, 2.0]}\n",
         "bad.yaml:5", "train.loss.weight", "weight has 2 values, but there are 10"),
    case("metric-of-another-task", MLP + "train: {metrics: [accuracy, rmse]}\n", "bad.yaml:4",
         "train.metrics[1]", "metric rmse is for regression tasks; this run is multiclass"),
    case("unknown-metric", MLP + "train: {metrics: [acuracy]}\n", "bad.yaml:4", "train.metrics[0]",
         "did you mean 'accuracy'?"),
    case("metric-twice", MLP + "train: {metrics: [f1, f1]}\n", "bad.yaml:4", "train.metrics[1]", "listed twice"),
    case("unknown-monitor", MLP + "train: {monitor: val_acuracy}\n", "bad.yaml:4", "train.monitor",
         "did you mean 'val_accuracy'?"),
    case("early-stopping-monitor", MLP + "train: {early_stopping: {monitor: val_f1}}\n", "bad.yaml:4",
         "train.early_stopping.monitor", "'val_f1' is no metric of this run"),
    case("torch-refuses-a-value", MLP + "train:\n  optimizer: {name: adam, betas: [1.5, 0.9]}\n",
         "bad.yaml:5", "train.optimizer", "torch refuses these arguments"),
    case("val-split-leaves-nothing", "name: t\ndata: {dataset: synthetic, input_shape: [4], num_classes: 2, size: 100,\n"
         "  val_split: 0.999}\nmodel: [{linear: {out_features: 2}}]\n", "bad.yaml:3", "data.val_split",
         "val_split=0.999 leaves no training sample of the 100"),
    case("drop-last-leaves-nothing", "name: t\ndata: {dataset: synthetic, input_shape: [4], num_classes: 2, size: 100,\n"
         "  batch_size: 200, drop_last: true}\nmodel: [{linear: {out_features: 2}}]\n", "bad.yaml:3",
         "data.batch_size", "leaves no batch"),
    case("scheduler-needs-argument", MLP + "train:\n  scheduler: step\n",
         "bad.yaml:5", "train.scheduler", "needs 'step_size'"),
    case("scheduler-kwarg-type", MLP + "train:\n  scheduler: {name: step, step_size: 1.5}\n",
         "bad.yaml:5", "train.scheduler.step_size", "an integer"),
    # ---- shapes
    case("pool-larger-than-input", HEAD + dedent("""\
        model:
          - pool: {kernel_size: 40}
          - flatten
        """), "bad.yaml:4", "model[0].pool.kernel_size", "does not fit the input 28×28"),
    case("in-features-wrong", HEAD + dedent("""\
        model:
          - flatten
          - linear: {out_features: 10, in_features: 700}
        """), "bad.yaml:5", "model[1].linear.in_features", "in_features=700, but the input here has 784"),
    case("groups-do-not-divide", HEAD + dedent("""\
        model:
          - conv: {out_channels: 6, kernel_size: 3, groups: 4}
        """), "bad.yaml:4", "model[0].conv.groups", "groups=4 does not divide in_channels=1"),
    case("kernel-list-length", HEAD + dedent("""\
        model:
          - conv: {out_channels: 6, kernel_size: [3, 3, 3]}
        """), "bad.yaml:4", "model[0].conv.kernel_size", "3 values but the input has 2 spatial dims"),
    case("same-padding-stride", HEAD + dedent("""\
        model:
          - conv: {out_channels: 6, kernel_size: 3, padding: same, stride: 2}
        """), "bad.yaml:4", "model[0].conv.padding", "needs stride 1"),
    case("dropout2d-after-flatten", HEAD + "model: [flatten, dropout2d]\n",
         "bad.yaml:3", "model[1].dropout2d", "(C, H, W)"),
    case("lstm-on-images", HEAD + "model: [{lstm: {hidden_size: 4}}]\n", "bad.yaml:3", "model[0].lstm", "(T, F)"),
    case("softmax-dim", HEAD + "model: [flatten, {linear: {out_features: 10}}, {softmax: {dim: 2}}]\n",
         "bad.yaml:3", "model[2].softmax.dim", "dim=2 is not a dim"),
    case("num-classes-mismatch", "name: t\ndata: {dataset: fashion_mnist, num_classes: 7}\nmodel: [flatten]\n",
         "bad.yaml:2", "data.num_classes", "fashion_mnist has 10 classes"),
    case("last-linear-wrong-width", HEAD + "model: [flatten, {linear: {out_features: 7}}]\n",
         "bad.yaml:3", "model[1].linear", "cross_entropy needs 10 class scores"),
    case("output-not-flat", HEAD + dedent("""\
        model:
          - conv: {out_channels: 10, kernel_size: 28}
        """), "bad.yaml:4", "model[0].conv", "add `flatten`"),
    case("embedding-not-first", """\
        name: t
        data: {dataset: synthetic, input_shape: [12], num_classes: 3, vocab_size: 50}
        model:
          - embedding: {num_embeddings: 50, embedding_dim: 8}
          - embedding: {num_embeddings: 50, embedding_dim: 8}
        """, "bad.yaml:5", "model[1].embedding", "must be the first layer"),
    case("tokens-without-embedding", """\
        name: t
        data: {dataset: synthetic, input_shape: [12], num_classes: 3, vocab_size: 50}
        model: [{linear: {out_features: 3}}]
        """, "bad.yaml:3", "model[0].linear", "start the network with `embedding`"),
    case("embedding-smaller-than-vocabulary", """\
        name: t
        data: {dataset: synthetic, input_shape: [12], num_classes: 3, vocab_size: 50}
        model:
          - embedding: {num_embeddings: 40, embedding_dim: 8}
          - flatten
          - linear: {out_features: 3}
        """, "bad.yaml:4", "model[0].embedding.num_embeddings", "use num_embeddings: 50 or more"),
    case("linear-of-a-trillion-features", HEAD + "model: [flatten, {linear: {out_features: 1000000000000}}]\n",
         "bad.yaml:3", "model[1].linear", "785,000,000,000,000 parameters: 3,140,000.0 GB of float32 weights"),
    case("activations-of-terabytes", HEAD + "model: [{conv: {out_channels: 3, kernel_size: 3, padding: 100000}}]\n",
         "bad.yaml:3", "model[0].conv", "120,031,202,028 elements per sample (480.1 GB of float32)"),
    case("sizes-past-int64", HEAD + "model: [flatten, {linear: {out_features: 100000000000000000000}}]\n",
         "bad.yaml:3", "model[1].linear.out_features", "less than or equal to 9223372036854775807"),
    case("too-many-layers", HEAD + "model: [&r relu, " + ", ".join(["*r"] * 1000) + "]\n",
         "bad.yaml:3", "model", "1,001 layers; modelspec builds at most 1,000"),
    # ---- grids
    case("grid-key-names-nothing", MLP + "grid:\n  train.optimiser.lr: [0.1]\n",
         "bad.yaml:5", "grid.train.optimiser.lr", "did you mean 'optimizer'?"),
    case("grid-value-wrong-type", MLP + "grid:\n  train.optimizer.lr:\n    - 0.1\n    - fast\n",
         "bad.yaml:7", "grid.train.optimizer.lr[1]", "train.optimizer.lr=fast"),
    case("grid-not-a-list", MLP + "grid:\n  train.epochs: 3\n", "bad.yaml:5", "grid.train.epochs", "valid list"),
    case("grid-too-many-runs", MLP + "grid:\n  seed: [" + ", ".join(map(str, range(40))) + "]\n"
         "  train.epochs: [" + ", ".join(map(str, range(1, 41))) + "]\n",
         "bad.yaml:5", "grid", "1,600 runs (40 × 40)"),
    case("grid-network-shape", HEAD + dedent("""\
        networks:
          a: [flatten, {linear: {out_features: 10}}]
          b: [flatten, {linear: {out_features: 3}}]
        train: {network: a}
        grid: {train.network: [a, b]}
        """), "bad.yaml:5", "networks.b[1].linear", "needs 10 class scores"),
    # ---- --set overrides: located at the override
    case("set-bad-value", MLP, "--set train.epochs=zero", "train.epochs", "received 'zero'", "train.epochs=zero"),
    case("set-nowhere", MLP, "--set model[5].bias=true", "model[5].bias", "nothing there", "model[5].bias=true"),
    case("set-without-value", MLP, "--set train.epochs", "<root>", "PATH=VALUE", "train.epochs"),
    case("set-layer-argument", MLP, "--set model[1].in_features=5", "model[1].linear.in_features",
         "in_features=5, but the input here has 784", "model[1].in_features=5"),
    case("set-grid-key", MLP, "--set grid.train.epoch=[1]", "grid.train.epoch", "did you mean 'epochs'?",
         "grid.train.epoch=[1]"),
    case("set-bad-yaml", MLP, "--set train.epochs=[1", "<root>", "not valid YAML", "train.epochs=[1"),
]


def where(issue) -> str:
    return issue.file if issue.line is None else f"{issue.file}:{issue.line}"


@pytest.mark.parametrize("text, overrides, expected_where, path, phrase", CASES)
def test_invalid_spec_is_refused_with_a_located_message(spec_issues, text, overrides, expected_where, path, phrase):
    issues = spec_issues(text, *overrides)
    found = [(where(i), format_path(i.path)) for i in issues]
    matching = [i for i in issues if (where(i), format_path(i.path)) == (expected_where, path)]
    assert matching, f"expected an issue at {expected_where} {path}; got {found}"
    assert any(phrase in f"{i.message}\n{i.hint}" for i in matching), [str(i) for i in matching]
    # The printed form leads with the place, as an editor reads file:line:col, then the spec path.
    printed = [str(i) for i in matching]
    assert any(p.startswith(expected_where) and (path in p or path == "<root>") for p in printed), printed


def test_every_problem_in_a_spec_is_reported_at_once(spec_issues):
    text = dedent("""\
        name: t
        data: {dataset: fashion_mnist, batch_size: 0}
        model:
          - conv: {out_channels: 6, kernel_sise: 5}
          - flaten
        train:
          optimizer: {name: adam, beta: 0.9}
        """)
    issues = spec_issues(text)
    assert [(i.line, format_path(i.path)) for i in issues] == [
        (2, "data.batch_size"),
        (4, "model[0].conv.kernel_size"),  # missing, as it is misspelt
        (4, "model[0].conv.kernel_sise"),
        (5, "model[1]"),
        (7, "train.optimizer.beta"),
    ]
    assert str(SpecError(issues)).startswith("5 problems in the spec:")


def test_every_network_with_a_shape_problem_is_reported(spec_issues):
    text = HEAD + dedent("""\
        networks:
          a: [{pool: {kernel_size: 30}}]
          b: [flatten, {linear: {out_features: 10, in_features: 3}}]
        train: {network: a}
        """)
    assert [(i.line, format_path(i.path)) for i in spec_issues(text)] == [
        (4, "networks.a[0].pool.kernel_size"),
        (5, "networks.b[1].linear.in_features"),
    ]


def test_a_spec_larger_than_any_real_one_is_refused_unread(spec_issues):
    (issue,) = spec_issues("name: " + "x" * 100_000)
    assert "larger than" in issue.message and issue.file == "bad.yaml"


def test_a_missing_spec_file_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError, match="no such spec file"):
        load_spec(tmp_path / "missing.yaml")


def test_yaml_1_1_exponents_without_a_dot_are_numbers():
    # YAML 1.1 reads `3e-3` as a string; a spec means the number, for kwargs checked against torch too.
    loaded = loads_spec(MLP + "train: {optimizer: {name: adam, lr: 3e-3, eps: 1e-8}}\n")
    assert loaded.spec.train.optimizer.lr == 0.003
    assert loaded.spec.train.optimizer.kwargs == {"eps": 1e-8}
