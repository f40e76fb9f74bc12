"""Every loss of the registry (`LOSS_KINDS`): its torch loss, built as the runner builds it
(`loss.build()`) and fed the targets in the form its task hands them (`Task.loss_target`: class indices,
0/1 floats, (N, T) reals), against a value computed here from the loss's definition; its typed
arguments' validation as located spec errors; and the task it implies against the network's last layer.

The cases come from the registry, not from a list of names: a new loss is picked up, and fails until it
has its examples (`EXAMPLES`), its hand computation (`REFERENCE`), its bad arguments (`INVALID`) and its
tasks (`TASKS_OF`).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from modelspec.compile.task import resolve_task, targets_of
from modelspec.errors import format_path
from modelspec.load import loads_spec
from modelspec.spec import losses as losses_module
from modelspec.spec.losses import LOSS_KINDS, LOSSES

NAMES = [cls.model_fields["name"].default for cls in LOSS_KINDS]

# --------------------------------------------------------------------------------------------------
# the setups: synthetic data and the width of the head that fits them

SETUPS = {  # name -> (data keys, target kind, count)
    "classes3": ("num_classes: 3", "classes", 3),
    "classes2": ("num_classes: 2", "classes", 2),
    "labels3": ("target_kind: binary, num_classes: 3", "multi_label", 3),
    "real2": ("target_kind: real, num_targets: 2", "real", 2),
}

# loss name -> setup -> (the head's width, the task) for every setup the loss trains on; the others fail.
TASKS_OF = {
    "cross_entropy": {"classes3": (3, "multiclass"), "classes2": (2, "binary")},
    "nll": {"classes3": (3, "multiclass"), "classes2": (2, "binary")},
    "multi_margin": {"classes3": (3, "multiclass"), "classes2": (2, "binary")},
    "bce_with_logits": {"classes2": (1, "binary"), "labels3": (3, "multilabel")},
    "bce": {"classes2": (1, "binary"), "labels3": (3, "multilabel")},
    "mse": {"real2": (2, "regression")},
    "l1": {"real2": (2, "regression")},
    "smooth_l1": {"real2": (2, "regression")},
    "huber": {"real2": (2, "regression")},
}


def spec_text(setup: str, head: list[str], loss: dict) -> str:
    """A synthetic spec; the loss in block form, one argument a line (so each has its own line)."""
    lines = [
        "name: t",
        f"data: {{dataset: synthetic, input_shape: [4], size: 64, {SETUPS[setup][0]}}}",
        "model:",
        "  - linear: {out_features: 8}",
        *(f"  - {layer}" for layer in head),
        "train:",
        "  loss:",
        *(f"    {key}: {json.dumps(value)}" for key, value in loss.items()),
    ]
    return "\n".join(lines) + "\n"


def _line(text: str, start: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith(start))


def task_of(train, setup: str, width: int):
    """The task `resolve_task` gives a run of the setup's data on a head of `width` outputs."""
    kind, count = SETUPS[setup][1], SETUPS[setup][2]
    data_kind = {"classes": "classes", "multi_label": "binary", "real": "real"}[kind]
    targets = targets_of(data_kind, None if kind == "real" else count, count if kind == "real" else None)
    return resolve_task(train, (width,), targets, ("model", 1, "linear"))


def _registered(name: str, table: dict, what: str):
    if name not in table:
        pytest.fail(f"loss {name!r} is in LOSS_KINDS but has no entry in {what} of "
                    f"tests/test_losses_registry.py: add it")
    return table[name]


# --------------------------------------------------------------------------------------------------
# the batches: the network's raw outputs (logits or values), and the targets, as plain lists

LOGITS = [[2.0, -1.0, 0.5], [0.2, 0.4, -0.3], [-1.5, 1.0, 2.5], [1.2, 0.9, -0.4], [0.0, 2.0, -2.0]]
CLASSES = {3: [0, 1, 1, 2, 0], 2: [0, 1, 1, 0, 1]}  # class indices; 3 classes: rows 1, 3, 4 wrong
LABELS = [[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 0]]  # 0/1 per label
VALUES = [[0.5, -1.0], [2.0, 0.3], [-0.7, 1.6], [3.0, -2.5], [0.1, 0.1]]  # predicted values
REALS = [[0.2, -1.1], [-1.0, 0.2], [-0.4, 3.0], [1.5, -2.45], [0.1, 1.4]]  # errors of 0.05 .. 3.0, one exact


def batch(name: str, setup: str) -> tuple[np.ndarray, np.ndarray]:
    """(what the network outputs, as the loss reads it; the data's targets) for a loss on a setup."""
    width = TASKS_OF[name][setup][0]
    kind, count = SETUPS[setup][1], SETUPS[setup][2]
    if kind == "real":
        return np.array(VALUES), np.array(REALS)
    raw = np.array(LOGITS)[:, :width]
    target = np.array(LABELS if kind == "multi_label" else CLASSES[count])
    output = LOSSES[name].output
    if output == "log_probs":  # the network ends in log_softmax
        raw = raw - np.log(np.exp(raw).sum(1, keepdims=True))
    elif output == "probs":  # the network ends in sigmoid
        raw = 1 / (1 + np.exp(-raw))
    return raw, target


# --------------------------------------------------------------------------------------------------
# the hand computations, from the definitions; `out` is (N, C), `target` indices (N,) or 0/1 (N, C)
# (a binary bce's 0/1 column), as the task hands them


def _log_softmax(out):
    return out - np.log(np.exp(out).sum(1, keepdims=True))


def _cross_entropy(loss, out, target):
    k = out.shape[1]
    w = np.ones(k) if loss.weight is None else np.array(loss.weight)
    logp = _log_softmax(out)
    eps = loss.label_smoothing
    keep = [i for i, y in enumerate(target) if y != loss.ignore_index]
    # the smoothed target: (1 - eps) on the class, eps / K on every class; each class's term weighted
    per = [(1 - eps) * w[target[i]] * -logp[i, target[i]] + eps / k * sum(w[c] * -logp[i, c] for c in range(k))
           for i in keep]
    return sum(per) / sum(w[target[i]] for i in keep)


def _nll(loss, logp, target):
    k = logp.shape[1]
    w = np.ones(k) if loss.weight is None else np.array(loss.weight)
    keep = [i for i, y in enumerate(target) if y != loss.ignore_index]
    return sum(w[target[i]] * -logp[i, target[i]] for i in keep) / sum(w[target[i]] for i in keep)


def _multi_margin(loss, x, target):
    n, k = x.shape
    w = np.ones(k) if loss.weight is None else np.array(loss.weight)
    total = 0.0
    for i in range(n):
        y = target[i]
        total += sum(w[y] * max(0.0, loss.margin - x[i, y] + x[i, j]) ** loss.p for j in range(k) if j != y) / k
    return total / n


def _pos_weight(loss, columns):
    pw = loss.pos_weight
    return np.ones(columns) if pw is None else np.array(pw if isinstance(pw, list) else [pw] * columns)


def _bce_with_logits(loss, x, y):
    pw = _pos_weight(loss, x.shape[1])
    log_p, log_q = -np.log1p(np.exp(-x)), -np.log1p(np.exp(x))  # log sigmoid(x), log (1 - sigmoid(x))
    return float(np.mean(-(pw * y * log_p + (1 - y) * log_q)))


def _bce(loss, p, y):
    return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))


def _smooth_l1(loss, x, y):
    d = np.abs(x - y)
    if loss.beta == 0:
        return float(d.mean())
    return float(np.mean(np.where(d < loss.beta, 0.5 * d**2 / loss.beta, d - 0.5 * loss.beta)))


def _huber(loss, x, y):
    d = np.abs(x - y)
    return float(np.mean(np.where(d <= loss.delta, 0.5 * d**2, loss.delta * (d - 0.5 * loss.delta))))


REFERENCE = {
    "cross_entropy": _cross_entropy,
    "nll": _nll,
    "multi_margin": _multi_margin,
    "bce_with_logits": _bce_with_logits,
    "bce": _bce,
    "mse": lambda loss, x, y: float(np.mean((x - y) ** 2)),
    "l1": lambda loss, x, y: float(np.mean(np.abs(x - y))),
    "smooth_l1": _smooth_l1,
    "huber": _huber,
}

EXAMPLES = {  # loss name -> setup -> the argument sets to check there
    "cross_entropy": {
        "classes3": [{}, {"label_smoothing": 0.2}, {"weight": [1.0, 2.0, 0.5]},
                     {"weight": [1.0, 2.0, 0.5], "label_smoothing": 0.1}, {"ignore_index": 1}],
        "classes2": [{}, {"weight": [0.25, 3.0], "label_smoothing": 0.3}],
    },
    "nll": {
        "classes3": [{}, {"weight": [1.0, 2.0, 0.5]}, {"ignore_index": 2}],
        "classes2": [{"weight": [2.0, 1.0]}],
    },
    "multi_margin": {
        "classes3": [{}, {"p": 2}, {"margin": 0.5}, {"p": 2, "margin": 2.0, "weight": [1.0, 2.0, 0.5]}],
        "classes2": [{"margin": 1.5}],
    },
    "bce_with_logits": {
        "classes2": [{}, {"pos_weight": 3.0}, {"pos_weight": [0.5]}],
        "labels3": [{}, {"pos_weight": 2.0}, {"pos_weight": [1.0, 4.0, 0.5]}],
    },
    "bce": {"classes2": [{}], "labels3": [{}]},
    "mse": {"real2": [{}]},
    "l1": {"real2": [{}]},
    "smooth_l1": {"real2": [{}, {"beta": 0.5}, {"beta": 2.5}, {"beta": 0.0}]},
    "huber": {"real2": [{}, {"delta": 0.5}, {"delta": 2.5}]},
}


def _value_cases():
    for cls, name in zip(LOSS_KINDS, NAMES):
        for setup in TASKS_OF.get(name) or [None]:  # None: no entry yet, the test says to add it
            yield pytest.param(cls, setup, id=f"{name}-{setup}")


@pytest.mark.parametrize("cls,setup", list(_value_cases()))
def test_every_loss_matches_its_definition_on_a_small_batch(cls, setup):
    """Built from the spec as the runner builds it (`train.loss.build()`), the targets shaped by the task
    (`loss_target`), the value against the definition's."""
    name = cls.model_fields["name"].default
    _registered(name, TASKS_OF, "TASKS_OF")
    examples = _registered(name, EXAMPLES, "EXAMPLES").get(setup)
    assert examples, f"EXAMPLES[{name!r}] has no case for {setup}, a setup it trains on"
    reference = _registered(name, REFERENCE, "REFERENCE")
    width, kind = TASKS_OF[name][setup]
    out, target = batch(name, setup)
    for arguments in examples:
        text = spec_text(setup, [f"linear: {{out_features: {width}}}"], {"name": name, **arguments})
        spec = loads_spec(text, "good.yaml", []).runs()[0].spec
        loss = spec.train.loss
        assert isinstance(loss, cls)
        task = task_of(spec.train, setup, width)
        assert task.kind == kind
        y = torch.tensor(target, dtype=torch.float32 if SETUPS[setup][1] == "real" else torch.long)
        loss_target = task.loss_target(y)
        value = loss.build()(torch.tensor(out, dtype=torch.float32), loss_target)
        assert value.dim() == 0, (arguments, value)
        # the reference reads the same columns: a binary bce's one column of 0/1, else what the task gives
        hand_target = loss_target.numpy().astype(np.float64 if loss_target.is_floating_point() else np.int64)
        expected = reference(loss, out.astype(np.float64), hand_target)
        assert value.item() == pytest.approx(expected, rel=1e-5, abs=1e-6), (name, setup, arguments)


@pytest.mark.parametrize("cls,setup", list(_value_cases()))
def test_a_loss_of_r_batches_at_once_is_each_batchs_own(cls, setup):
    """`LossSpec.batched` (a packed grid's loss, runner/stacked/pack.py): for three batches stacked
    (R, N, ...), each one's loss as the built module computes it alone, and the same gradients."""
    name = cls.model_fields["name"].default
    width, _ = TASKS_OF[name][setup]
    out, target = batch(name, setup)
    for arguments in EXAMPLES[name][setup]:
        text = spec_text(setup, [f"linear: {{out_features: {width}}}"], {"name": name, **arguments})
        spec = loads_spec(text, "good.yaml", []).runs()[0].spec
        loss, task = spec.train.loss, task_of(spec.train, setup, width)
        losses = loss.batched()
        if losses is None:
            continue
        y = torch.tensor(target, dtype=torch.float32 if SETUPS[setup][1] == "real" else torch.long)
        outs = torch.stack([torch.tensor(out, dtype=torch.float32) * scale for scale in (1.0, -0.5, 2.0)])
        outs.requires_grad_(True)
        targets = torch.stack([task.loss_target(y)] * 3)
        alone = torch.stack([loss.build()(o, t) for o, t in zip(outs, targets)])
        together = losses(outs, targets)
        assert together.shape == (3,)
        torch.testing.assert_close(together, alone, rtol=1e-6, atol=1e-7)
        grads = [torch.autograd.grad(values.sum(), outs)[0] for values in (together, alone)]
        torch.testing.assert_close(grads[0], grads[1], rtol=1e-6, atol=1e-7)


def test_cross_entropy_has_its_own_batched_loss_but_not_with_class_weights():
    assert LOSSES["cross_entropy"]().batched() is not None
    assert LOSSES["cross_entropy"](weight=[1.0, 2.0, 3.0]).batched() is None
    assert LOSSES["mse"]().batched() is None  # the module under vmap


def test_the_targets_come_in_the_forms_each_task_hands_the_loss():
    """Class indices (long, (N,)), a binary bce's 0/1 column ((N, 1) floats), labels and values (N, C)."""
    forms = {}
    for name in NAMES:
        for setup, (width, kind) in TASKS_OF.get(name, {}).items():
            spec = loads_spec(spec_text(setup, [f"linear: {{out_features: {width}}}"], {"name": name}), "g.yaml", [])
            task = task_of(spec.runs()[0].spec.train, setup, width)
            _, target = batch(name, setup)
            t = task.loss_target(torch.tensor(target))
            forms[name, setup] = (t.dtype, tuple(t.shape))
    assert forms["cross_entropy", "classes3"] == (torch.long, (5,))
    assert forms["nll", "classes2"] == (torch.long, (5,))
    assert forms["bce_with_logits", "classes2"] == (torch.float32, (5, 1))
    assert forms["bce", "labels3"] == (torch.float32, (5, 3))
    assert forms["huber", "real2"] == (torch.float32, (5, 2))


def test_the_batches_are_not_trivial():
    """Each argument must move the value, or a loss that ignores it would pass."""
    logits = np.array(LOGITS)
    assert 0 < sum(int(np.argmax(r) == t) for r, t in zip(logits, CLASSES[3])) < 5
    d = np.abs(np.array(VALUES) - np.array(REALS))
    for cut in (0.5, 1.0, 2.5):  # beta and delta split the errors: some below, some above
        assert (d < cut).any() and (d > cut).any(), cut
    for name, setups in EXAMPLES.items():
        for setup, variants in setups.items():
            cls = LOSSES[name]
            out, target = batch(name, setup)
            values = []
            for arguments in variants:
                loss = cls(name=name, **arguments)
                tgt = target if SETUPS[setup][1] != "classes" or cls.targets == ("classes",) else target[:, None]
                values.append(round(REFERENCE[name](loss, out, tgt), 9))
            assert len(set(values)) == len(values), (name, setup, values)


# What the network's output is to each loss, by its definition (the layer the network ends in).
OUTPUT = {
    "cross_entropy": "logits", "nll": "log_probs", "multi_margin": "scores", "bce_with_logits": "logits",
    "bce": "probs", "mse": "values", "l1": "values", "smooth_l1": "values", "huber": "values",
}


@pytest.mark.parametrize("cls", LOSS_KINDS, ids=NAMES)
def test_every_loss_declares_the_output_of_its_definition(cls):
    """nll reads log-probabilities (after log_softmax), bce probabilities (after sigmoid): metrics and
    predict turn the output into probabilities by this declaration."""
    name = cls.model_fields["name"].default
    assert cls.output == _registered(name, OUTPUT, "OUTPUT"), (name, cls.output, OUTPUT[name])


def test_the_tables_name_no_loss_that_is_gone():
    for table in (EXAMPLES, REFERENCE, TASKS_OF, INVALID, OUTPUT):
        assert set(table) <= set(NAMES), set(table) - set(NAMES)
    assert set(LOSSES) == set(NAMES)


# --------------------------------------------------------------------------------------------------
# the typed arguments, through the spec language

INVALID = {  # loss name -> (an argument the spec refuses, a piece of the message)
    "cross_entropy": [({"label_smoothing": 1.5}, "less than or equal to 1"), ({"weight": [1, 0, 2]}, "greater than 0"),
                      ({"ignore_index": 0.5}, "integer")],
    "nll": [({"weight": [1, -2, 2]}, "greater than 0"), ({"label_smoothing": 0.1}, "label_smoothing")],
    "multi_margin": [({"p": 3}, "1 or 2"), ({"margin": "wide"}, "number")],
    "bce_with_logits": [({"pos_weight": -1.0}, "greater than 0"), ({"weight": [1, 2]}, "weight")],
    "bce": [({"pos_weight": 2.0}, "pos_weight")],
    "mse": [({"reduction": "sum"}, "reduction")],
    "l1": [({"reduction": "sum"}, "reduction")],
    "smooth_l1": [({"beta": -1.0}, "greater than or equal to 0")],
    "huber": [({"delta": 0.0}, "greater than 0"), ({"beta": 1.0}, "beta")],
}


def _first_setup(name: str) -> tuple[str, int]:
    setup, (width, _) = next(iter(_registered(name, TASKS_OF, "TASKS_OF").items()))
    return setup, width


@pytest.mark.parametrize("cls", LOSS_KINDS, ids=NAMES)
def test_a_bad_argument_is_a_located_spec_error_at_its_line(spec_issues, cls):
    name = cls.model_fields["name"].default
    setup, width = _first_setup(name)
    for arguments, piece in _registered(name, INVALID, "INVALID"):
        (key,) = arguments
        text = spec_text(setup, [f"linear: {{out_features: {width}}}"], {"name": name, **arguments})
        issues = spec_issues(text)
        assert len(issues) == 1, [str(i) for i in issues]
        (issue,) = issues
        assert format_path(issue.path) in (f"train.loss.{key}", f"train.loss.{key}[1]"), str(issue)  # a list: its item
        assert (issue.file, issue.line) == ("bad.yaml", _line(text, f"    {key}:")), str(issue)
        assert piece in issue.message, str(issue)


def _weight_cases():
    for cls, name in zip(LOSS_KINDS, NAMES):
        for field in ("weight", "pos_weight"):
            if field in cls.model_fields:
                for setup in TASKS_OF.get(name) or [None]:
                    yield pytest.param(cls, field, setup, id=f"{name}-{field}-{setup}")


@pytest.mark.parametrize("cls,field,setup", list(_weight_cases()))
def test_a_per_class_list_of_the_wrong_length_is_an_error_at_its_line(spec_issues, cls, field, setup):
    """One value per output the loss reads: per class, per label, and one for a binary bce's one logit."""
    name = cls.model_fields["name"].default
    width = _registered(name, TASKS_OF, "TASKS_OF")[setup][0]
    head = [f"linear: {{out_features: {width}}}"]
    assert cls(name=name, **{field: [1.0] * width}).class_weights() == (field, [1.0] * width)
    loads_spec(spec_text(setup, head, {"name": name, field: [2.0] * width}), "good.yaml", [])  # the right length
    for wrong in (width - 1, width + 1):
        if wrong < 1:
            continue
        text = spec_text(setup, head, {"name": name, field: [2.0] * wrong})
        (issue,) = spec_issues(text)
        assert format_path(issue.path) == f"train.loss.{field}", str(issue)
        assert (issue.file, issue.line) == ("bad.yaml", _line(text, f"    {field}:")), str(issue)
        assert f"{field} has {wrong} values, but there are {width} outputs per sample" in issue.message, str(issue)


@pytest.mark.parametrize("cls", LOSS_KINDS, ids=NAMES)
def test_every_loss_builds_and_an_argument_torch_refuses_is_a_located_error(spec_issues, monkeypatch, cls):
    """The loss is built once at validate time: its torch class exists, and what torch refuses (here
    an argument slipped into its keywords) is a spec error at `train.loss`, not a traceback in a run."""
    name = cls.model_fields["name"].default
    assert isinstance(cls(name=name).build(), torch.nn.Module)
    setup, width = _first_setup(name)
    text = spec_text(setup, [f"linear: {{out_features: {width}}}"], {"name": name})
    real = cls.torch_kwargs
    monkeypatch.setattr(cls, "torch_kwargs", lambda self: {**real(self), "bogus": 1})
    (issue,) = spec_issues(text)
    assert format_path(issue.path) == "train.loss", str(issue)
    assert (issue.file, issue.line) == ("bad.yaml", _line(text, "    name:")), str(issue)
    assert "torch refuses these arguments" in issue.message and "bogus" in issue.message, str(issue)


# --------------------------------------------------------------------------------------------------
# the task each loss implies, against the data and the network's last layer


def _task_cases():
    for cls, name in zip(LOSS_KINDS, NAMES):
        for setup in SETUPS:
            yield pytest.param(cls, setup, id=f"{name}-{setup}")


WHAT = {"classes": "class labels", "multi_label": "0/1 labels (multi-label)", "real": "real values"}


@pytest.mark.parametrize("cls,setup", list(_task_cases()))
def test_the_task_a_loss_implies_is_checked_against_the_data_and_the_head(spec_issues, cls, setup):
    name = cls.model_fields["name"].default
    accepted = _registered(name, TASKS_OF, "TASKS_OF")
    kind, count = SETUPS[setup][1], SETUPS[setup][2]
    if setup not in accepted:
        text = spec_text(setup, [f"linear: {{out_features: {count}}}"], {"name": name})
        (issue,) = spec_issues(text)
        assert format_path(issue.path) == "train.loss", str(issue)
        assert (issue.file, issue.line) == ("bad.yaml", _line(text, "    name:")), str(issue)
        if kind in cls.targets:  # bce on three classes: the right kind of target, not binary
            assert f"{name} is binary or multi-label, but the data has {count} classes" in issue.message
        else:
            assert f"{name} trains on " in issue.message and f"the data's targets are {WHAT[kind]}" in issue.message
        return
    width, task = accepted[setup]
    # the right head validates, and the loss's output kind names the layer the network ends in
    ending = {"log_probs": ["log_softmax"], "probs": ["sigmoid"]}.get(cls.output, [])
    head = [f"linear: {{out_features: {width}}}", *ending]
    loaded = loads_spec(spec_text(setup, head, {"name": name}), "good.yaml", [])
    assert isinstance(loaded.runs()[0].spec.train.loss, cls)
    # a head of 10 outputs is an error at the head's line that says the counts
    text = spec_text(setup, ["linear: {out_features: 10}"], {"name": name})
    (issue,) = spec_issues(text)
    assert format_path(issue.path) == "model[1].linear", str(issue)
    assert (issue.file, issue.line) == ("bad.yaml", _line(text, "  - linear: {out_features: 10}")), str(issue)
    expected = {
        "multiclass": f"{name} needs {count} class scores ({count} classes)",
        "binary": (f"{name} needs {count} class scores ({count} classes)" if width == 2 else
                   f"{name} needs 1 output per sample (binary) or one per label; the network ends in 10"),
        "multilabel": f"{name} needs one output per label ({count}); the network ends in 10",
        "regression": f"{name} needs one output per target ({count}); the network ends in 10",
    }[task]
    assert expected in issue.message, str(issue)


def test_every_target_kind_has_losses():
    """Each setup is trained by some loss, so no case above is only the error branch."""
    assert {setup for table in TASKS_OF.values() for setup in table} == set(SETUPS)
    assert {t for cls in LOSS_KINDS for t in cls.targets} == {"classes", "multi_label", "real"}
    assert hasattr(losses_module, "Loss")
