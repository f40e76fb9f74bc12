"""Recurrent layers read only the real tokens of a text padded at its end: exactly what a packed
sequence gives, in eager mode and in every export format, whatever the padding after the text.
"""

from __future__ import annotations

from textwrap import dedent

import pytest
import torch
from pydantic import TypeAdapter
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from modelspec.artifacts import ModelInfo, TrainedModel
from modelspec.compile import build_model
from modelspec.errors import SpecError
from modelspec.export import FORMATS, export_trained
from modelspec.export.inputs import random_inputs
from modelspec.load import loads_spec
from modelspec.spec.layers import Layer
from modelspec.spec.validate import validate_data
from modelspec.spec.yaml_source import SourceMap

PAD = 1  # <pad> of a text's tokenizer
LAYER = TypeAdapter(Layer)
LAYERS = TypeAdapter(list[Layer])
ONNX = FORMATS["onnx"]


def _packed(rnn: torch.nn.Module, x: torch.Tensor, lengths: torch.Tensor, output: str) -> torch.Tensor:
    """What torch's packed sequences give: the reference."""
    packed, h = rnn(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    h = h[0] if isinstance(h, tuple) else h
    out, _ = pad_packed_sequence(packed, batch_first=True, total_length=x.size(1))
    if output == "all":
        return out
    if output == "last":
        return out[torch.arange(len(x)), lengths - 1]
    return torch.cat([h[-2], h[-1]], 1) if rnn.bidirectional else h[-1]


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("output", ["last", "all", "hidden"])
def test_lengths_give_what_packed_sequences_give(kind, bidirectional, num_layers, output):
    torch.manual_seed(0)
    layer = LAYER.validate_python({kind: {"hidden_size": 5, "num_layers": num_layers, "bidirectional": bidirectional,
                                          "output": output, "dropout": 0.3}})
    module = layer.build((9, 4)).eval()
    x = torch.randn(5, 9, 4)
    lengths = torch.tensor([9, 1, 4, 7, 2])
    with torch.no_grad():
        got = module(x, lengths)
        expected = _packed(module.rnn, x, lengths, output)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


def test_lengths_train_the_same_gradients_as_packed_sequences():
    torch.manual_seed(0)
    layer = LAYER.validate_python({"lstm": {"hidden_size": 5, "num_layers": 2, "bidirectional": True,
                                            "output": "hidden"}})
    module = layer.build((6, 3)).train()
    x, lengths = torch.randn(3, 6, 3), torch.tensor([6, 2, 4])
    module(x, lengths).square().sum().backward()
    ours = [p.grad.clone() for p in module.parameters()]
    module.zero_grad()
    _packed(module.rnn, x, lengths, "hidden").square().sum().backward()
    for a, b in zip(ours, (p.grad for p in module.parameters())):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def text_network(kind: str, bidirectional: bool, output: str) -> list:
    """Embedding, per-step layers, a recurrent layer, a head: an IMDB-like text classifier."""
    rnn = {kind: {"hidden_size": 6, "bidirectional": bidirectional, "output": output}}
    head = [{"lstm": {"hidden_size": 4, "output": "hidden"}}] if output == "all" else []
    return LAYERS.validate_python([
        {"embedding": {"num_embeddings": 30, "embedding_dim": 5, "padding_idx": PAD}},
        {"dropout": {"p": 0.2}}, "layernorm", {"linear": {"out_features": 5}}, "tanh",
        rnn, *head, {"dropout": {"p": 0.3}}, {"linear": {"out_features": 3}},
    ])


def padded_texts(steps: int, lengths: list[int], seed: int = 0) -> torch.Tensor:
    """Token ids (N, steps): real tokens (never <pad>) up to each length, then <pad>."""
    ids = torch.randint(2, 30, (len(lengths), steps), generator=torch.Generator().manual_seed(seed))
    return ids.masked_fill(torch.arange(steps) >= torch.tensor(lengths).unsqueeze(1), PAD)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("output", ["last", "hidden", "all"])
def test_more_padding_changes_nothing(kind, bidirectional, output):
    torch.manual_seed(0)
    model = build_model(text_network(kind, bidirectional, output), (12,), 3, tokens=True).eval()
    texts = padded_texts(12, [12, 3, 7, 1])
    more = torch.cat([texts, torch.full((4, 25), PAD)], 1)  # the same texts in a longer max_length
    with torch.no_grad():
        torch.testing.assert_close(model(more), model(texts), atol=1e-6, rtol=1e-5)
        # A text with no token at all (all padding) still gives an output: that of one <pad> step.
        assert model(torch.full((2, 12), PAD)).isfinite().all()


def test_a_gru_learns_from_short_texts_padded_to_a_long_max_length():
    """The class is in a text's first word; texts of 2-5 words padded to 30. Reading 25 padding steps
    after the text, the GRU stayed at chance (0.50); reading the words only, it learns the rule."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small RNN is slower on several busy threads than on one
    try:
        torch.manual_seed(0)
        model = build_model(LAYERS.validate_python([
            {"embedding": {"num_embeddings": 30, "embedding_dim": 8, "padding_idx": PAD}},
            {"gru": {"hidden_size": 16, "output": "hidden"}}, {"linear": {"out_features": 2}}]), (30,), 2, tokens=True)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        generator = torch.Generator().manual_seed(1)

        def batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
            x = torch.randint(2, 30, (n, 30), generator=generator)
            x = x.masked_fill(torch.arange(30) >= torch.randint(2, 6, (n, 1), generator=generator), PAD)
            return x, (x[:, 0] < 16).long()

        for _ in range(60):
            x, y = batch(64)
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        x, y = batch(1000)
        with torch.no_grad():
            assert (model(x).argmax(1) == y).float().mean() > 0.9
    finally:
        torch.set_num_threads(threads)


def test_a_plain_list_keeps_its_state_dict_keys_and_loads_old_weights():
    layers = text_network("lstm", False, "hidden")
    model = build_model(layers, (12,), 3, tokens=True)
    # The modules of an earlier run: the same layers in an nn.Sequential, keys 0, 1, ...
    old = torch.nn.Sequential(*(layer.build(shape) for layer, shape in zip(layers, [
        (12,), (12, 5), (12, 5), (12, 5), (12, 5), (12, 5), (6,), (6,)])))
    assert list(model.state_dict()) == list(old.state_dict())
    model.load_state_dict(old.state_dict())  # strict: every key, no other


def test_networks_without_padding_are_plain_stacks():
    """Synthetic tokens (no padding_idx), floats into an lstm: an nn.Sequential as ever."""
    tokens = LAYERS.validate_python([{"embedding": {"num_embeddings": 30, "embedding_dim": 5}},
                                     {"lstm": {"hidden_size": 6}}, {"linear": {"out_features": 3}}])
    floats = LAYERS.validate_python([{"gru": {"hidden_size": 6}}, {"linear": {"out_features": 3}}])
    assert isinstance(build_model(tokens, (12,), 3, tokens=True), torch.nn.Sequential)
    assert isinstance(build_model(floats, (12, 4), 3), torch.nn.Sequential)


def test_layers_that_mix_steps_stop_the_lengths():
    """After a conv over time (transpose, conv, transpose) the steps are no longer the tokens':
    the lstm reads them all, as before."""
    layers = LAYERS.validate_python([
        {"embedding": {"num_embeddings": 30, "embedding_dim": 5, "padding_idx": PAD}}, "transpose",
        {"conv": {"out_channels": 5, "kernel_size": 3, "padding": 1}}, "transpose",
        {"lstm": {"hidden_size": 6}}, {"linear": {"out_features": 3}}])
    assert isinstance(build_model(layers, (12,), 3, tokens=True), torch.nn.Sequential)


def _text_trained(kind: str, bidirectional: bool, output: str) -> TrainedModel:
    spec = validate_data({"name": "padded", "seed": 3,
                          "data": {"dataset": "synthetic", "input_shape": [12], "num_classes": 3, "vocab_size": 30},
                          "model": [layer.model_dump() for layer in text_network(kind, bidirectional, output)]},
                         SourceMap("<padded>"))
    torch.manual_seed(0)
    model = build_model(spec.layers, (12,), 3, tokens=True)
    return TrainedModel(spec, ModelInfo([12], "int64", 3), model.eval())


def test_random_verification_inputs_are_padded_at_the_end_from_varied_lengths():
    trained = _text_trained("gru", True, "hidden")
    x = random_inputs(trained.spec, trained.info, 8)
    real = (x != PAD).long() * torch.arange(1, 13)
    lengths = real.amax(1)
    assert lengths[0] < 12 and len(set(lengths.tolist())) >= 3
    assert ((x == PAD) == (torch.arange(12) >= lengths.unsqueeze(1))).all()  # padding only at the end


@pytest.mark.slow
@pytest.mark.parametrize("kind, bidirectional, output", [("lstm", False, "hidden"), ("gru", True, "last"),
                                                         ("lstm", True, "all")])
def test_every_export_format_reads_only_the_real_tokens(kind, bidirectional, output, tmp_path):
    trained = _text_trained(kind, bidirectional, output)
    formats = [f for f in FORMATS if f != "onnx" or _has_onnx()]
    report = export_trained(trained, tmp_path, formats, log=lambda _: None)
    assert report.passed, report.failures
    texts = padded_texts(12, [12, 2, 5, 9, 1], seed=4)
    longer = torch.cat([texts, torch.full((5, 8), PAD)], 1)  # another length, more padding
    with torch.no_grad():
        eager = trained.model(texts)
        for name in formats:
            loaded = FORMATS[name].load(tmp_path / FORMATS[name].file)
            for x, expected in ((texts, eager), (longer, eager), (texts[1:2], eager[1:2])):
                torch.testing.assert_close(loaded(x).float(), expected, atol=1e-5, rtol=1e-4,
                                           msg=lambda m, name=name: f"{name}: {m}")


def _has_onnx() -> bool:
    try:
        ONNX.require()
    except SpecError:
        return False
    return True


TEXT_SPEC = dedent("""\
    name: t
    data: {dataset: text, path: nowhere.csv, max_words: 100, max_length: 20, num_classes: 2}
    model:
      - embedding: {num_embeddings: 102, embedding_dim: 8}
      - dropout: {p: 0.1}
      - gru: {hidden_size: 4}
      - linear: {out_features: num_classes}
    """)


def test_a_text_network_whose_embedding_has_no_padding_idx_is_a_located_error():
    with pytest.raises(SpecError) as caught:
        loads_spec(TEXT_SPEC, "bad.yaml")
    (issue,) = caught.value.issues
    assert (issue.line, issue.path) == (4, ("model", 0, "embedding", "padding_idx"))
    assert "padded at the end with <pad> = 1" in issue.message and "model[2]" in issue.message
    assert "padding_idx: 1" in issue.hint
    wrong = TEXT_SPEC.replace("embedding_dim: 8", "embedding_dim: 8, padding_idx: 0")
    with pytest.raises(SpecError, match="has padding_idx=0"):
        loads_spec(wrong, "bad.yaml")
    # Right: padding_idx 1; and a conv network needs none (it reads no step after the text as the last).
    loads_spec(TEXT_SPEC.replace("embedding_dim: 8", "embedding_dim: 8, padding_idx: 1"), "ok.yaml")
    loads_spec(TEXT_SPEC.replace("- gru: {hidden_size: 4}", "- flatten"), "ok.yaml")


def test_a_recurrent_layer_in_a_block_over_padded_steps_is_a_located_error():
    """Only the network's own layers get the lengths: a block's gru would read the padding."""
    text = TEXT_SPEC.replace("model:", "blocks:\n  rnn:\n    layers: [{gru: {hidden_size: 4}}]\nmodel:").replace(
        "embedding_dim: 8", "embedding_dim: 8, padding_idx: 1").replace("- gru: {hidden_size: 4}", "- rnn")
    with pytest.raises(SpecError) as caught:
        loads_spec(text, "bad.yaml")
    (issue,) = caught.value.issues
    assert issue.path[:2] == ("model", 2) and "block 'rnn' has an lstm or gru" in issue.message
    loads_spec(text.replace("[{gru: {hidden_size: 4}}]", "[{linear: {out_features: 4}}]").replace(
        "- linear: {out_features: num_classes}", "- flatten\n  - linear: {out_features: num_classes}"), "ok.yaml")
