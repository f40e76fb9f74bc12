"""Fuzzing the loader: whatever a spec says, loading it ends in a valid spec or a located SpecError.

Valid specs are mutated as data (keys dropped, renamed, retyped, swapped, junk inserted, subtrees
moved, edge numbers, --set overrides) and as text (characters and lines edited). A valid result must
also compile: its static shapes must equal what torch computes on the meta device.

MODELSPEC_FUZZ_EXAMPLES sets the examples per fuzz test (default 150); the issue's acceptance run is
MODELSPEC_FUZZ_EXAMPLES=3500 (three tests: 10,500 specs). Run with -s to see the slowest validation.
"""

from __future__ import annotations

import copy
import os
import time
from datetime import timedelta
from pathlib import Path

import jsonschema
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _specs import loss_accepted, spec_loss
from modelspec.compile import build_model
from modelspec.errors import SpecError, format_path
from modelspec.load import LoadedSpec, check_shapes, loads_spec
from modelspec.spec.data import DATA_KINDS, static_shape
from modelspec.spec.export import ExportSpec, TrackingSpec
from modelspec.spec.layers import LAYER_KINDS, LAYER_TYPES
from modelspec.spec.root import Spec
from modelspec.spec.train import LOSSES, OPTIMIZERS, SCHEDULERS, EarlyStoppingSpec, TrainSpec
from modelspec.spec.transforms import TRANSFORM_KINDS, TRANSFORM_TYPES
from modelspec.spec.yaml_source import load_yaml

EXAMPLES = int(os.environ.get("MODELSPEC_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=5),  # generous: a spec validates in milliseconds
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=EXAMPLES <= 150,  # the default run is the same every time; a long run explores
)

REPO = Path(__file__).resolve().parents[1]
SPEC_TEXTS = [path.read_text() for path in sorted((REPO / "specs").glob("*.yaml")) if loss_accepted(spec_loss(path))] + [
    """\
name: small_cnn
data:
  dataset: cifar10
  transforms: [random_horizontal_flip, {random_crop: {size: 28, padding: 2}}, grayscale, to_tensor,
               {normalize: {mean: [0.5], std: [0.25]}}]
model:
  - conv: {out_channels: 8, kernel_size: [3, 3], padding: same}
  - leaky_relu: {negative_slope: 0.1}
  - pool: {kind: avg, output_size: 4}
  - dropout2d: {p: 0.1}
  - flatten: {start_dim: 1}
  - layernorm
  - linear: {out_features: num_classes, bias: false}
  - log_softmax
train:
  loss: nll
  optimizer: {rmsprop: {lr: 0.01, momentum: 0.9}}
  scheduler: {name: onecycle}
  early_stopping: {monitor: val_loss, patience: 2}
  amp: bf16
""",
    """\
name: folder_gru
data:
  dataset: image_folder
  root: images
  input_shape: [1, 16, 16]
  transforms: [{resize: {size: [16, 16]}}, grayscale, to_tensor]
model:
  - conv: {out_channels: 4, kernel_size: 3, stride: 2}
  - flatten: {start_dim: 2}
  - gru: {hidden_size: 8, output: all, bidirectional: true}
  - flatten
  - linear: {out_features: num_classes}
grid:
  model[2].gru.hidden_size: [4, 8]
  train.loss: [cross_entropy, multi_margin]
""",
]
SEEDS = [load_yaml(text)[0] for text in SPEC_TEXTS]

MODELS = [Spec, *DATA_KINDS, TrainSpec, ExportSpec, TrackingSpec, EarlyStoppingSpec, *LAYER_KINDS, *TRANSFORM_KINDS]
NAMES = sorted(
    {key for model in MODELS for key in model.model_fields}
    | {*LAYER_TYPES, *TRANSFORM_TYPES, *OPTIMIZERS, *LOSSES, *SCHEDULERS, "betas", "momentum", "num_classes"}
)
EDGE_NUMBERS = [
    0, -1, 1, 2, 3, 7, 0.5, -0.0, 1e-12, 2**31, 2**32, 2**63 - 1, 2**63, 2**64, 10**12, 10**19, 10**40,
    1e308, float("inf"), float("-inf"), float("nan"), True, False, None,
]
# Edits of YAML text: what breaks structure (indicators, indentation) and what breaks values.
YAML_PIECES = [":", ": ", "- ", "[", "]", "{", "}", ",", "&a ", "*a", "!!python/object:os.system ", "!!str ",
               "#", "|", ">", "'", '"', "\n", "  ", "\t", "? ", "---\n", "...", "<<: ", "%YAML 1.1\n", "\\",
               "~", "null", "yes", "1e999", "0x10", "-5", "10000000000000", "9" * 40, "1_0", ".inf", "é", "\x00"]

_SCHEMA = Spec.model_json_schema()
SCHEMA = jsonschema.validators.validator_for(_SCHEMA)(_SCHEMA)
SLOWEST = {"seconds": 0.0, "cpu": 0.0, "text": "", "overrides": (), "count": 0}


# ------------------------------------------------------------------------------------------------
# What every outcome must be


def load_and_check(text: str, overrides: tuple[str, ...] = ()) -> LoadedSpec | SpecError:
    """Load (timed: that is `modelspec validate`'s work) and check the outcome."""
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        outcome: LoadedSpec | SpecError = loads_spec(text, "fuzz.yaml", overrides)
    except SpecError as exc:
        outcome = exc
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    SLOWEST["count"] += 1
    SLOWEST["cpu"] = max(SLOWEST["cpu"], cpu)  # wall time also counts whatever else the machine runs
    if elapsed > SLOWEST["seconds"]:
        SLOWEST.update(seconds=elapsed, text=text, overrides=overrides)

    if isinstance(outcome, SpecError):
        assert outcome.issues
        for issue in outcome.issues:
            assert issue.file == "fuzz.yaml" or issue.file.startswith("--set "), issue
            assert issue.message
            if issue.file == "fuzz.yaml" and issue.line is None:  # only whole-file problems have no line
                assert "the spec is empty" in issue.message or "larger than" in issue.message, issue
    else:
        outcome.runs()
        check_compiles(outcome)
        SCHEMA.validate(outcome.raw)  # `modelspec schema` accepts what validate accepts
    return outcome


def check_compiles(loaded: LoadedSpec) -> None:
    """A valid spec builds, and torch's shapes (on the meta device: nothing allocated) are the
    static ones, for every network."""
    shapes, _ = check_shapes(loaded.spec, loaded.source)
    for name, network in shapes.items():
        tokens = loaded.spec.data.tokens
        layers = [row.layer for row in network.layers]  # num_classes resolved (or its stand-in)
        with torch.device("meta"):
            model = build_model(layers, network.input_shape, tokens=tokens)
            batch = torch.zeros(2, *network.input_shape, dtype=torch.long if tokens else torch.float32)
            assert tuple(model(batch).shape) == (2, *network.output_shape), name


@pytest.fixture(scope="module", autouse=True)
def report_slowest():
    load_and_check(SPEC_TEXTS[0])  # the first load pays for lazy imports in torch; not a spec's cost
    SLOWEST.update(seconds=0.0, cpu=0.0, count=0)
    yield
    print(f"\nfuzz: {SLOWEST['count']} specs loaded; most CPU time {SLOWEST['cpu'] * 1000:.0f} ms; "
          f"slowest {SLOWEST['seconds'] * 1000:.0f} ms wall, "
          f"with overrides {SLOWEST['overrides']}:\n{SLOWEST['text']}")


# ------------------------------------------------------------------------------------------------
# Mutations of the data


def spots(tree) -> list[tuple[tuple, dict | list, str | int]]:
    """Every (path, container, key) in the tree."""
    found = []
    stack = [((), tree)]
    while stack:
        path, node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in items:
            found.append(((*path, key), node, key))
            stack.append(((*path, key), child))
    return found


junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12) | st.sampled_from(NAMES),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(NAMES) | st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def typo(draw, word: str) -> str:
    if not word:
        return draw(st.sampled_from(NAMES))
    i = draw(st.integers(0, len(word) - 1))
    edit = draw(st.sampled_from(["drop", "double", "swap", "upper", "dot"]))
    if edit == "drop":
        return word[:i] + word[i + 1 :]
    if edit == "double":
        return word[:i] + word[i] + word[i:]
    if edit == "swap" and i + 1 < len(word):
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if edit == "dot":
        return word[:i] + "." + word[i:]
    return word.upper()


def mutate(draw, tree) -> None:
    places = [(parent, key) for _, parent, key in spots(tree)]
    if not places:
        tree["name"] = draw(junk)
        return
    parent, key = draw(st.sampled_from(places))
    op = draw(st.sampled_from(["drop", "rename", "retype", "number", "swap", "insert", "transplant"]))
    if op == "drop":
        del parent[key]
    elif op == "rename" and isinstance(parent, dict):
        how = draw(st.sampled_from(["typo", "name", "text"]))
        new = typo(draw, key) if how == "typo" else draw(st.sampled_from(NAMES) if how == "name" else st.text(max_size=8))
        parent[new] = parent.pop(key)
    elif op == "retype":
        parent[key] = draw(junk)
    elif op == "number":
        parent[key] = draw(st.sampled_from(EDGE_NUMBERS))
    elif op == "swap":
        other = draw(st.sampled_from(list(parent.keys() if isinstance(parent, dict) else range(len(parent)))))
        parent[key], parent[other] = parent[other], parent[key]
    elif op == "insert":
        value = draw(junk | st.sampled_from([p[k] for p, k in places]))  # junk, or a value from the spec
        if isinstance(parent, list):
            parent.insert(draw(st.integers(0, len(parent))), copy.deepcopy(value))
        else:
            parent[draw(st.sampled_from(NAMES) | st.text(max_size=8))] = copy.deepcopy(value)
    elif op == "transplant":
        donor, donor_key = draw(st.sampled_from(places))
        parent[key] = copy.deepcopy(donor[donor_key])


@st.composite
def mutated_specs(draw) -> tuple[str, tuple[str, ...]]:
    seed = draw(st.sampled_from(SEEDS))
    tree = copy.deepcopy(seed)
    for _ in range(draw(st.integers(1, 4))):
        mutate(draw, tree)
    text = yaml.safe_dump(tree, sort_keys=False, allow_unicode=True)
    paths = [format_path(path) for path, _, _ in spots(seed)]
    paths += ["grid.train.optimizer.lr", "grid.seed", "model[99].x", "a..b", "[0]", "grid."]
    override = st.builds(
        lambda path, sep, value: f"{path}{sep}{value}",
        st.sampled_from(paths) | st.text(max_size=10),
        st.sampled_from(["=", "=", ""]),
        st.sampled_from(["1", "0", "-1", "[0.1, 0.01]", "{}", "[]", "x", "null", "2e-3", "'", "[", "9" * 40])
        | st.text(max_size=8),
    )
    return text, tuple(draw(st.lists(override, max_size=2)))


@FUZZ
@given(mutated_specs())
def test_mutated_specs_load_or_fail_with_located_errors(case):
    text, overrides = case
    load_and_check(text, overrides)


# ------------------------------------------------------------------------------------------------
# Mutations of the text


@st.composite
def edited_texts(draw) -> str:
    text = draw(st.sampled_from(SPEC_TEXTS))
    for _ in range(draw(st.integers(1, 5))):
        lines = text.splitlines(keepends=True)
        edit = draw(st.sampled_from(["insert", "delete", "replace", "line-drop", "line-copy", "line-indent"]))
        if edit in ("insert", "delete", "replace"):
            at = draw(st.integers(0, len(text)))
            end = min(len(text), at + draw(st.integers(0, 8)))
            piece = "" if edit == "delete" else draw(st.sampled_from(YAML_PIECES) | st.text(max_size=4))
            text = text[:at] + piece + text[end if edit != "insert" else at :]
        elif lines:
            i = draw(st.integers(0, len(lines) - 1))
            if edit == "line-drop":
                del lines[i]
            elif edit == "line-copy":
                lines.insert(draw(st.integers(0, len(lines))), lines[i])
            else:
                lines[i] = " " * draw(st.integers(0, 5)) + lines[i].lstrip(" ")
            text = "".join(lines)
    return text


@FUZZ
@given(edited_texts())
def test_edited_spec_texts_load_or_fail_with_located_errors(text):
    load_and_check(text)


@FUZZ
@given(st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_arbitrary_text_loads_or_fails_with_located_errors(text):
    load_and_check(text)


# ------------------------------------------------------------------------------------------------
# Hostile specs, named


def refused(text: str, phrase: str) -> None:
    outcome = load_and_check(text)
    assert isinstance(outcome, SpecError), "expected the spec to be refused"
    assert phrase in str(outcome)


def billion_laughs(levels: int) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "text, phrase",
    [
        (billion_laughs(9), "YAML bomb"),
        ("name: t\ndata: " + "[" * 50_000, "nested more than 40 levels"),
        ("name: t\ndata: " + "{a: " * 10_000, "nested more than 40 levels"),
        ("".join(" " * i + "-\n" for i in range(200)), "nested more than 40 levels"),
        ("a: &a [*a, *a]\n", "nested more than 40 levels"),
        ("a: &a {b: *a, c: *a}\n", "nested more than 40 levels"),
        ("name: t\nseed: " + "9" * 5000 + "\n", "5000 digits"),
        ("name: t\ndata: {dataset: mnist, val_split: 1e400}\n", "data.val_split"),
        ("name: !!python/object/apply:os.system [echo hi]\n", "!!python/object are not allowed"),
        ("name: !!python/name:os.system\n", "not allowed"),
        ("name: !!python/module:os\n", "not allowed"),
        ("!!python/object/new:os.system [echo]\n", "not allowed"),
        ("name: !custom x\n", "not allowed"),
        ("name: t\n" + "k: v\n" * 20_000, "larger than 64000 bytes"),
        ("\x00\x01", "not valid YAML"),
    ],
    ids=["billion-laughs", "deep-flow-list", "deep-flow-map", "deep-block-list", "recursive-list",
         "recursive-map", "huge-int", "float-overflow", "python-apply", "python-name", "python-module",
         "python-new", "unknown-tag", "oversized", "control-chars"],
)
def test_hostile_yaml_is_refused_with_a_clear_message(text, phrase):
    refused(text, phrase)


def test_a_trillion_feature_linear_is_refused_before_any_allocation():
    text = "name: t\ndata: {dataset: mnist}\nmodel: [flatten, {linear: {out_features: 1000000000000}}]\n"
    refused(text, "785,000,000,000,000 parameters: 3,140,000.0 GB of float32 weights")


def test_sizes_past_int64_are_refused_not_crashed():
    # 784 × 2^62 weights: each size fits in int64, their product does not.
    text = "name: t\ndata: {dataset: mnist}\nmodel: [flatten, {linear: {out_features: 4611686018427387904}}]\n"
    refused(text, "weights would have more than 2^63 elements")
