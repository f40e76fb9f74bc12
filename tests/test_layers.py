"""Every layer kind, driven by the registry: the static shape rule agrees with a real forward, the
parameter count of the shape pass agrees with the built module, and a dump validates back to the
same layer. The examples are the kinds' own (`LayerSpec.examples`); a kind whose class declares none
fails."""

from __future__ import annotations

import pytest
import torch
from pydantic import TypeAdapter

from modelspec.compile import count_parameters, infer_shapes
from modelspec.errors import SpecError
from modelspec.spec.layers import LAYER_TYPES, Embedding, Layer

LAYER = TypeAdapter(Layer)


def declared(kind: type, name: str):
    """What the kind's own class declares: a kind derived from another declares its own examples."""
    return vars(kind).get(name)


# Each kind's examples: (arguments, per-sample input shape), declared on its class.
CASES = [
    pytest.param(name, args, shape, id=f"{name}-{i}")
    for name, kind in LAYER_TYPES.items()
    for i, (args, shape) in enumerate(declared(kind, "examples") or [({}, ())])
]


def random_input(kind: str, args: dict, shape: tuple[int, ...]) -> torch.Tensor:
    if kind == "embedding":
        return torch.randint(0, args["num_embeddings"], (3, *shape))
    return torch.randn(3, *shape)


def test_every_layer_kind_has_examples():
    missing = [name for name, kind in LAYER_TYPES.items() if not declared(kind, "examples")]
    assert not missing, f"declare `examples` on the class of the layer kind(s) {missing}"


@pytest.mark.parametrize("kind, args, shape", CASES)
def test_static_shape_and_parameters_match_the_built_module(kind, args, shape):
    if not declared(LAYER_TYPES[kind], "examples"):
        pytest.fail(f"the class of layer kind '{kind}' declares no `examples`")
    layer = LAYER.validate_python({kind: args})
    if layer.takes_list:  # a merge: one input shape per source
        expected = layer.graph_output_shape(shape)
        module = layer.graph_build(shape)
        with torch.no_grad():
            out = module([torch.randn(3, *s) for s in shape])
        assert tuple(out.shape) == (3, *expected)
        return
    expected = layer.output_shape(shape)

    torch.manual_seed(0)
    module = layer.build(shape)
    with torch.no_grad():
        out = module(random_input(kind, args, shape))
    assert tuple(out.shape) == (3, *expected)

    shapes = infer_shapes([layer], shape, tokens=isinstance(layer, Embedding))
    assert shapes.output_shape == expected
    assert shapes.parameters == count_parameters(module)


@pytest.mark.parametrize("kind, args, shape", CASES)
def test_dump_validates_back_to_the_same_layer(kind, args, shape):
    if not declared(LAYER_TYPES[kind], "examples"):
        pytest.fail(f"the class of layer kind '{kind}' declares no `examples`")
    layer = LAYER.validate_python({kind: args})
    assert LAYER.validate_python(layer.model_dump()) == layer
    assert LAYER.validate_json(layer.model_dump_json()) == layer
    # The three spellings of a spec agree: one-key mapping (above), long form, and a bare name.
    assert LAYER.validate_python({"type": kind, **args}) == layer
    if not args:
        assert LAYER.validate_python(kind) == layer


def test_recurrent_outputs_pick_the_documented_tensor():
    torch.manual_seed(0)
    lstm = LAYER.validate_python({"lstm": {"hidden_size": 3, "output": "all", "bidirectional": True}})
    module = lstm.build((5, 4))
    x = torch.randn(2, 5, 4)
    with torch.no_grad():
        everything = module(x)  # (N, T, 2H): forward half, then backward half
        module.output = "hidden"
        hidden = module(x)
        module.output = "last"
        last = module(x)
    torch.testing.assert_close(last, everything[:, -1])
    # The final states: forward direction at the last step, backward direction at the first.
    torch.testing.assert_close(hidden, torch.cat([everything[:, -1, :3], everything[:, 0, 3:]], dim=1))


@pytest.mark.parametrize(
    "kind, args, shape, phrase",
    [
        ("conv", {"out_channels": 4, "kernel_size": 3}, (2,), "needs an input of shape"),
        ("conv", {"out_channels": 4, "kernel_size": 3, "in_channels": 3}, (2, 8, 8), "in_channels=3"),
        ("pool", {"kernel_size": 4, "padding": 3}, (2, 8, 8), "more than half"),
        ("pool", {"kernel_size": 2, "dim": 1}, (2, 8, 8), "dim=1"),
        ("flatten", {"start_dim": 0}, (2, 3), "start_dim must be 1 or more"),
        ("linear", {"out_features": "num_classes"}, (4,), "num_classes is not resolved"),
        ("batchnorm", {"num_features": 5}, (3, 4, 4), "num_features=5"),
        ("layernorm", {"normalized_shape": [5]}, (3, 4), "not the trailing dims"),
        ("gru", {"hidden_size": 3, "input_size": 5}, (5, 4), "input_size=5"),
        ("log_softmax", {"dim": 0}, (4,), "dim=0 is not a dim"),
        ("conv_transpose", {"out_channels": 2, "kernel_size": 3, "stride": 2, "output_padding": 2}, (2, 4, 4),
         "output_padding=2 must be smaller"),
        ("group_norm", {"num_groups": 3}, (4, 2, 2), "num_groups=3 does not divide the 4 channels"),
        ("instance_norm", {}, (4,), "instance_norm needs"),
        ("permute", {"dims": [1, 0, 2]}, (3, 4), "keeps the batch dim first"),
        ("transpose", {"dim0": 0, "dim1": 1}, (3, 4), "dim0=0 is not a dim"),
        ("reshape", {"shape": [5, -1]}, (3, 4), "cannot reshape 3×4 (12 elements)"),
        ("squeeze", {"dim": 1}, (3, 4), "dim=1 has size 3"),
        ("select", {"dim": 1, "index": 5}, (5, 3), "index=5 is outside dim 1 of size 5"),
        ("upsample", {"mode": "bilinear", "scale_factor": 2}, (2, 4), "mode=bilinear takes 2d"),
        ("pad", {"padding": [3, 3], "mode": "reflect"}, (2, 3), "smaller than the size 3"),
        ("pixel_shuffle", {"upscale_factor": 2}, (6, 3, 3), "C divisible by 4"),
        ("prelu", {"num_parameters": 4}, (3, 2, 2), "num_parameters=4"),
        ("torchvision", {"name": "resnet18", "num_classes": 3}, (1, 4, 4), "resnet18 cannot take an input of 1×4×4"),
    ],
)
def test_shape_rules_refuse_inputs_torch_would_refuse(kind, args, shape, phrase):
    layer = LAYER.validate_python({kind: args})
    with pytest.raises(SpecError) as caught:
        layer.output_shape(shape)
    assert phrase in str(caught.value)


@pytest.mark.parametrize(
    "kind, args, shapes, phrase",
    [
        ("add", {"from": ["a", "b"]}, [(3, 4), (3, 5)], "add needs inputs of one shape; received a 3×4, b 3×5"),
        ("multiply", {}, [(3, 4)], "multiply merges two or more inputs; received 1"),
        ("concat", {"from": ["a", "b"]}, [(2, 4), (3, 5)], "concat along dim 1 needs the other dims equal"),
        ("concat", {}, [(2, 4), (3,)], "the same number of dims"),
        ("relu", {"from": ["a", "b"]}, [(3,), (3,)], "relu takes one input; received 2 (from: a, b)"),
    ],
)
def test_merge_rules_print_both_shapes(kind, args, shapes, phrase):
    layer = LAYER.validate_python({kind: args} if args else kind)
    with pytest.raises(SpecError) as caught:
        layer.graph_output_shape(shapes)
    assert phrase in str(caught.value)
