"""Every metric of the registry (`METRIC_KINDS`), on every task it declares: its torchmetrics object on a
tiny hand-made batch against a value computed here from the metric's definition, its direction, the
task rule as the spec language reports it, and that it builds at all (a misspelt torchmetrics class
name fails here, not in a run).

The cases come from the registry, not from a list of names: a new metric is picked up, and fails until
it has its examples (`EXAMPLES`), its hand computation (`REFERENCE`) and its direction (`DIRECTION`).
The batches are what `modelspec.compile.task` hands a metric: multi-class (N, K) probabilities and (N,)
indices; binary (N,) positive probabilities and (N,) 0/1 targets; multi-label (N, L) probabilities and
0/1 targets; regression (N, T) values.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from modelspec.errors import format_path
from modelspec.load import loads_spec
from modelspec.spec.metrics import DEFAULT_METRICS, METRIC_KINDS, METRICS, MetricSpec

NAMES = [cls.model_fields["name"].default for cls in METRIC_KINDS]
KINDS = ("multiclass", "binary", "multilabel", "regression")

# --------------------------------------------------------------------------------------------------
# the batches: (preds, target) as plain lists, and the task's size (classes, labels, targets)

BATCHES = {
    "multiclass": (3, [  # probabilities of 3 classes, target class
        ([0.70, 0.20, 0.10], 0),  # right
        ([0.20, 0.50, 0.30], 1),  # right
        ([0.10, 0.30, 0.60], 2),  # right
        ([0.50, 0.40, 0.10], 1),  # wrong, 2nd
        ([0.35, 0.25, 0.40], 0),  # wrong, 2nd
        ([0.10, 0.60, 0.30], 2),  # wrong, 2nd
        ([0.60, 0.30, 0.10], 2),  # wrong, 3rd
    ]),
    "binary": (2, [  # the positive class's probability, 0/1 target
        (0.90, 1), (0.80, 1), (0.65, 0), (0.55, 1), (0.45, 0), (0.30, 0), (0.75, 1), (0.20, 1), (0.60, 0),
        (0.50, 0), (0.70, 1),  # at a threshold: decided 1, as `train.threshold`, the confusion matrix, predict
    ]),
    "multilabel": (3, [  # probabilities of 3 labels, 0/1 each
        ([0.90, 0.20, 0.60], [1, 0, 1]),
        ([0.80, 0.70, 0.40], [1, 0, 0]),
        ([0.30, 0.60, 0.80], [0, 1, 1]),
        ([0.55, 0.10, 0.65], [0, 0, 1]),
        ([0.20, 0.75, 0.35], [1, 1, 0]),
        ([0.40, 0.50, 0.70], [0, 1, 0]),  # at a threshold: decided 1
    ]),
    "regression": (2, [  # predicted values of 2 targets, true values
        ([2.0, -1.0], [2.5, -1.5]),
        ([0.5, 3.0], [1.0, 2.0]),
        ([4.0, 0.0], [3.0, 0.5]),
        ([1.5, 2.5], [2.0, 4.0]),
    ]),
}
THRESHOLDS = {"binary": (0.5, 0.7), "multilabel": (0.5, 0.7)}  # the others read no threshold


def tensors(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    rows = BATCHES[kind][1]
    preds = torch.tensor([p for p, _ in rows], dtype=torch.float32)
    target = torch.tensor([t for _, t in rows], dtype=torch.float32 if kind == "regression" else torch.long)
    return preds, target


# --------------------------------------------------------------------------------------------------
# the hand computations, from the definitions, on plain lists


def _div(a: float, b: float) -> float:
    return a / b if b else 0.0


def _auroc(scores: list[float], labels: list[int]) -> float:
    """The share of (positive, negative) pairs ranked right; ties count half."""
    pos = [s for s, y in zip(scores, labels) if y == 1]
    neg = [s for s, y in zip(scores, labels) if y == 0]
    right = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return right / (len(pos) * len(neg))


def _decisions(kind: str, threshold: float) -> tuple[list[list[int]], list[list[int]]]:
    """One 0/1 column per class (multi-class, binary: class 0 then class 1) or label: (decided, true)."""
    size, rows = BATCHES[kind]
    if kind == "multiclass":
        decided = [[int(p.index(max(p)) == c) for c in range(size)] for p, _ in rows]
        true = [[int(t == c) for c in range(size)] for _, t in rows]
    elif kind == "binary":
        decided = [[int(p < threshold), int(p >= threshold)] for p, _ in rows]
        true = [[1 - t, t] for _, t in rows]
    else:
        decided = [[int(q >= threshold) for q in p] for p, _ in rows]
        true = [list(t) for _, t in rows]
    return [list(col) for col in zip(*decided)], [list(col) for col in zip(*true)]


def _counts(kind: str, threshold: float) -> list[tuple[int, int, int]]:
    """(tp, fp, fn) per class or label."""
    decided, true = _decisions(kind, threshold)
    return [(sum(d & t for d, t in zip(ds, ts)), sum(d & (1 - t) for d, t in zip(ds, ts)),
             sum((1 - d) & t for d, t in zip(ds, ts))) for ds, ts in zip(decided, true)]


SCORE = {  # (tp, fp, fn) -> the score of one class
    "precision": lambda tp, fp, fn: _div(tp, tp + fp),
    "recall": lambda tp, fp, fn: _div(tp, tp + fn),
    "f1": lambda tp, fp, fn: _div(2 * tp, 2 * tp + fp + fn),
}


def _averaged(metric: MetricSpec, kind: str, threshold: float):
    counts = _counts(kind, threshold)
    score = SCORE[metric.name]
    if kind == "binary" and not metric.per_label:
        return score(*counts[1])  # the positive class's, whatever `average` says
    per_class = [score(*c) for c in counts]
    if metric.average == "none":
        return per_class
    if metric.average == "macro":
        return sum(per_class) / len(per_class)
    if metric.average == "weighted":  # by support: the class's true samples
        support = [tp + fn for tp, _, fn in counts]
        return sum(s * w for s, w in zip(per_class, support)) / sum(support)
    return score(*(sum(c[i] for c in counts) for i in range(3)))  # micro: the pooled counts


def _accuracy(metric, kind, threshold):
    size, rows = BATCHES[kind]
    if kind == "multiclass":
        return sum(p.index(max(p)) == t for p, t in rows) / len(rows)
    if kind == "binary":
        return sum(int(p >= threshold) == t for p, t in rows) / len(rows)
    return sum(sum(int(p[i] >= threshold) == t[i] for p, t in rows) / len(rows) for i in range(size)) / size


def _top_k(metric, kind, threshold):
    size, rows = BATCHES[kind]
    k = min(metric.k, size)
    return sum(t in sorted(range(size), key=lambda c: -p[c])[:k] for p, t in rows) / len(rows)


def _auroc_of(metric, kind, threshold):
    size, rows = BATCHES[kind]
    if kind == "binary":
        return _auroc([p for p, _ in rows], [t for _, t in rows])
    if kind == "multiclass":  # one class against the rest, the mean over classes
        return sum(_auroc([p[c] for p, _ in rows], [int(t == c) for _, t in rows]) for c in range(size)) / size
    return sum(_auroc([p[i] for p, _ in rows], [t[i] for _, t in rows]) for i in range(size)) / size


def _errors(kind):
    return [p - t for pred, true in BATCHES[kind][1] for p, t in zip(pred, true)]


def _r2(metric, kind, threshold):
    size, rows = BATCHES[kind]
    scores = []
    for j in range(size):  # per target, then the mean
        true = [t[j] for _, t in rows]
        mean = sum(true) / len(true)
        ss_res = sum((p[j] - t[j]) ** 2 for p, t in rows)
        ss_tot = sum((t - mean) ** 2 for t in true)
        scores.append(1 - ss_res / ss_tot)
    return sum(scores) / size


REFERENCE = {  # metric name -> (metric, task kind, threshold) -> the value(s) its definition gives
    "accuracy": _accuracy,
    "top_k_accuracy": _top_k,
    "precision": _averaged,
    "recall": _averaged,
    "f1": _averaged,
    "auroc": _auroc_of,
    "mae": lambda m, kind, th: sum(abs(e) for e in _errors(kind)) / len(_errors(kind)),
    "mse": lambda m, kind, th: sum(e * e for e in _errors(kind)) / len(_errors(kind)),
    "rmse": lambda m, kind, th: math.sqrt(sum(e * e for e in _errors(kind)) / len(_errors(kind))),
    "r2": _r2,
    "mape": lambda m, kind, th: sum(abs(p - t) / abs(t) for pred, true in BATCHES[kind][1]
                                    for p, t in zip(pred, true)) / len(_errors(kind)),
}

EXAMPLES = {  # metric name -> the arguments of the variants to check (each on every task it declares)
    "accuracy": [{}],
    "top_k_accuracy": [{"k": 1}, {"k": 2}, {}],  # the default k=5 is more than the 3 classes: all right
    "precision": [{}, {"average": "micro"}, {"average": "weighted"}, {"average": "none"}],
    "recall": [{}, {"average": "micro"}, {"average": "weighted"}, {"average": "none"}],
    "f1": [{}, {"average": "micro"}, {"average": "weighted"}, {"average": "none"}],
    "auroc": [{}],
    "mae": [{}], "mse": [{}], "rmse": [{}], "r2": [{}], "mape": [{}],
}

# The direction by definition: scores (more agreement) higher, errors lower.
DIRECTION = {
    "accuracy": True, "top_k_accuracy": True, "precision": True, "recall": True, "f1": True, "auroc": True,
    "r2": True, "mae": False, "mse": False, "rmse": False, "mape": False,
}


def _registered(name: str, table: dict, what: str):
    if name not in table:
        pytest.fail(f"metric {name!r} is in METRIC_KINDS but has no entry in {what} of "
                    f"tests/test_metrics_registry.py: add it")
    return table[name]


def _cases():
    for cls, name in zip(METRIC_KINDS, NAMES):
        for kind in cls.tasks:
            for threshold in THRESHOLDS.get(kind, (0.5,)):
                yield pytest.param(cls, kind, threshold, id=f"{name}-{kind}-{threshold}")


# --------------------------------------------------------------------------------------------------
# values


@pytest.mark.parametrize("cls,kind,threshold", list(_cases()))
def test_every_metric_matches_its_definition_on_a_small_batch(cls, kind, threshold):
    name = cls.model_fields["name"].default
    examples = _registered(name, EXAMPLES, "EXAMPLES")
    reference = _registered(name, REFERENCE, "REFERENCE")
    assert examples, f"EXAMPLES[{name!r}] lists no variant"
    size = BATCHES[kind][0]
    preds, target = tensors(kind)
    for arguments in examples:
        metric = cls(name=name, **arguments)
        built = metric.build(kind, size, threshold)
        built.update(preds[:4], target[:4])  # in two batches, as a run feeds it
        built.update(preds[4:], target[4:])
        value = built.compute()
        expected = reference(metric, kind, threshold)
        if metric.per_label:  # one value per class or label, as the runner names its columns
            assert isinstance(expected, list) and len(expected) == size
            assert value.reshape(-1).tolist() == pytest.approx(expected, abs=1e-5), arguments
        else:
            assert value.dim() == 0, (arguments, value)
            assert value.item() == pytest.approx(expected, abs=1e-5), arguments


def _stacked_batches(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Three runs' batches (R, N, ...) of the task's form: the small batch as it is, its scores
    reversed, and 500 samples of scores that tie often (so that which of the highest counts shows)."""
    size = BATCHES[kind][0]
    preds, target = tensors(kind)
    generator = torch.Generator().manual_seed(0)
    ties = torch.randint(0, 3, (500, *preds.shape[1:]), generator=generator).float() / 4
    tied_target = (torch.randint(0, size, (500,), generator=generator) if kind == "multiclass" else
                   torch.randint(0, 2, (500, *target.shape[1:]), generator=generator).to(target.dtype))
    reps = -(-500 // len(preds))
    small = [(preds.repeat(reps, *[1] * (preds.dim() - 1))[:500], target.repeat(reps, *[1] * (target.dim() - 1))[:500]),
             (preds.flip(-1).repeat(reps, *[1] * (preds.dim() - 1))[:500] if kind != "binary" else 1 - preds.repeat(reps)[:500],
              target.repeat(reps, *[1] * (target.dim() - 1))[:500])]
    runs = small + [(ties, tied_target), _edge_run(kind, ties, tied_target)]
    return torch.stack([p for p, _ in runs]), torch.stack([t for _, t in runs])


def _edge_run(kind: str, ties: torch.Tensor, tied_target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A fourth run on the edges a form must take as torchmetrics does: binary and multi-label
    scores that are logits (outside [0, 1]: a sigmoid first, for this run alone), a class no sample
    has nor gets (out of a multi-class macro average, in a multi-label one), a constant target and a
    perfect one (r2's special cases), zero targets (mape's epsilon)."""
    if kind == "binary":
        return ties * 8 - 2, tied_target  # 0.0 is decided 0 as a probability, 1 as a logit (0.5)
    if kind == "multilabel":  # logits too, and a label no sample has nor gets (it still counts)
        preds, target = ties * 8 - 2, tied_target.clone()
        preds[:, 2], target[:, 2] = -5.0, 0
        return preds, target
    if kind == "multiclass":
        return torch.cat([ties[:, :2], torch.full_like(ties[:, 2:], -1.0)], 1), tied_target % 2
    if kind == "regression":
        target = tied_target.clone()
        target[:, 0] = 1.0
        return torch.stack([ties[:, 0], target[:, 1]], 1), target
    return ties, tied_target


@pytest.mark.parametrize("cls,kind,threshold", list(_cases()))
def test_a_metric_of_r_runs_at_once_is_each_runs_own_bit_for_bit(cls, kind, threshold):
    """`MetricSpec.batched` (a packed grid's metrics, runner/metrics.py: compute_together): for four
    runs' batches stacked (R, N, ...), each run's value exactly as its torchmetrics object computes it."""
    name = cls.model_fields["name"].default
    size = BATCHES[kind][0]
    preds, target = _stacked_batches(kind)
    for arguments in EXAMPLES[name]:
        metric = cls(name=name, **arguments)
        together = metric.batched(kind, size, threshold)
        if together is None:
            continue
        alone = []
        for p, t in zip(preds, target):
            built = metric.build(kind, size, threshold)
            built.update(p, t)
            alone.append(built.compute())
        values = together(preds, target)
        assert values.shape == (len(preds), *([size] if metric.per_label else [])), arguments
        assert values.dtype == torch.float32, arguments
        assert torch.equal(values, torch.stack(alone).float()), (arguments, values, alone)


def test_every_metric_has_a_batched_form_on_every_task_it_declares():
    """A grid's metrics, whatever its task and metrics, are computed together in a pack
    (MetricSet.compute_together); a new metric without a form would leave its tasks' sets to
    torchmetrics, run by run, correct but slower: give it one (spec/batched_metrics.py)."""
    for cls, name in zip(METRIC_KINDS, NAMES):
        for kind in cls.tasks:
            for arguments in EXAMPLES[name]:
                assert cls(name=name, **arguments).batched(kind, 3, 0.5) is not None, (name, kind, arguments)
    for kind in KINDS:
        assert all(m.batched(kind, 3, 0.5) is not None for m in DEFAULT_METRICS[kind]), kind


def test_the_batches_are_not_trivial():
    """A value a wrong metric could also give (all right, all wrong) would prove little."""
    for kind in ("multiclass", "binary", "multilabel"):
        for threshold in THRESHOLDS.get(kind, (0.5,)):
            for tp, fp, fn in _counts(kind, threshold):
                assert tp and (fp or fn), (kind, threshold)
    for k in (1, 2):
        assert 0 < _top_k(SimpleNamespace(k=k), "multiclass", 0.5) < 1, k


# --------------------------------------------------------------------------------------------------
# direction


@pytest.mark.parametrize("cls", METRIC_KINDS, ids=NAMES)
def test_every_metric_declares_the_direction_of_its_definition(cls):
    name = cls.model_fields["name"].default
    assert cls.higher_is_better is _registered(name, DIRECTION, "DIRECTION"), (
        f"{name}: higher_is_better should be {DIRECTION[name]} (scores higher, errors lower)")


@pytest.mark.parametrize("cls", METRIC_KINDS, ids=NAMES)
def test_a_perfect_prediction_scores_better_in_the_declared_direction(cls):
    """The direction from the values themselves: the truth as prediction beats the batch's."""
    name = cls.model_fields["name"].default
    kind = cls.tasks[0]
    size = BATCHES[kind][0]
    preds, target = tensors(kind)
    if kind == "multiclass":
        perfect = torch.nn.functional.one_hot(target, size).float() * 0.8 + 0.1
    else:
        perfect = target.float()
    arguments = _registered(name, EXAMPLES, "EXAMPLES")[0]  # top_k_accuracy's default k=5 gets all 3 classes
    values = []
    for p in (preds, perfect):
        built = cls(name=name, **arguments).build(kind, size, 0.5)
        built.update(p, target)
        values.append(built.compute().float().mean().item())
    batch, best = values
    assert best != batch, name
    assert (best > batch) is cls.higher_is_better, (name, batch, best)


def test_the_tables_name_no_metric_that_is_gone():
    for table in (EXAMPLES, REFERENCE, DIRECTION):
        assert set(table) <= set(NAMES), set(table) - set(NAMES)


# --------------------------------------------------------------------------------------------------
# the task rule and the build, through the spec language

TASK_SPECS = {  # synthetic data, as tests/test_tasks.py; the data, the head and the loss of each task
    "multiclass": ("num_classes: 3", "linear: {out_features: 3}", "cross_entropy"),
    "binary": ("num_classes: 2", "linear: {out_features: 1}", "bce_with_logits"),
    "multilabel": ("target_kind: binary, num_classes: 3", "linear: {out_features: 3}", "bce_with_logits"),
    "regression": ("target_kind: real, num_targets: 2", "linear: {out_features: 2}", "mse"),
}


def task_spec(kind: str, metrics: list[str]) -> str:
    data, head, loss = TASK_SPECS[kind]
    lines = [
        "name: t",
        f"data: {{dataset: synthetic, input_shape: [4], size: 64, {data}}}",
        "model:",
        "  - linear: {out_features: 8}",
        f"  - {head}",
        "train:",
        f"  loss: {loss}",
        "  metrics:",
        *(f"    - {m}" for m in metrics),
    ]
    return "\n".join(lines) + "\n"


def _wrong_cases():
    for cls, name in zip(METRIC_KINDS, NAMES):
        for kind in KINDS:
            if kind not in cls.tasks:
                yield pytest.param(cls, kind, id=f"{name}-on-{kind}")


@pytest.mark.parametrize("cls,kind", list(_wrong_cases()))
def test_a_metric_on_a_task_it_does_not_declare_is_a_located_spec_error(spec_issues, cls, kind):
    name = cls.model_fields["name"].default
    first = DEFAULT_METRICS[kind][0].name
    text = task_spec(kind, [first, name])
    (issue,) = spec_issues(text)
    assert format_path(issue.path) == "train.metrics[1]", str(issue)
    assert (issue.file, issue.line) == ("bad.yaml", text.splitlines().index(f"    - {name}") + 1), str(issue)
    assert f"metric {name} is for {' / '.join(cls.tasks)} tasks; this run is {kind}" in issue.message


def _right_cases():
    for cls, name in zip(METRIC_KINDS, NAMES):
        for kind in cls.tasks:
            yield pytest.param(cls, kind, id=f"{name}-on-{kind}")


@pytest.mark.parametrize("cls,kind", list(_right_cases()))
def test_every_metric_validates_and_builds_on_each_task_it_declares(cls, kind):
    """The spec passes, and its torchmetrics object exists (a misspelt class name fails here)."""
    from torchmetrics import Metric

    name = cls.model_fields["name"].default
    loaded = loads_spec(task_spec(kind, [name]), "good.yaml", [])
    (metric,) = loaded.runs()[0].spec.train.metrics
    assert isinstance(metric, cls)
    size = BATCHES[kind][0]
    for arguments in EXAMPLES.get(name, [{}]):
        built = cls(name=name, **arguments).build(kind, size, 0.5)
        assert isinstance(built, Metric), (name, kind, arguments, built)


def test_every_task_has_metrics():
    """Each task kind is declared by some metric, so none of the cases above is empty for it."""
    assert {kind for cls in METRIC_KINDS for kind in cls.tasks} == set(KINDS)
