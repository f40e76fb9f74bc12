"""Every layer kind, driven by the registry: the static shape rule agrees with a real forward, the
parameter count of the shape pass agrees with the built module, and a dump validates back to the
same layer. A kind added to LAYER_KINDS without an example here fails."""

from __future__ import annotations

import pytest
import torch
from pydantic import TypeAdapter

from modelspec.compile import count_parameters, infer_shapes
from modelspec.errors import SpecError
from modelspec.spec.layers import LAYER_KINDS, Embedding, Layer

LAYER = TypeAdapter(Layer)

# kind -> [(arguments, per-sample input shape)]; several where a kind has modes worth checking.
EXAMPLES: dict[str, list[tuple[dict, tuple[int, ...]]]] = {
    "conv": [
        ({"out_channels": 4, "kernel_size": 3}, (2, 8, 8)),
        ({"out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 1}, (2, 9)),  # 1d
        ({"out_channels": 3, "kernel_size": 2, "bias": False}, (1, 4, 5, 6)),  # 3d
        ({"out_channels": 6, "kernel_size": [3, 1], "padding": "same"}, (2, 7, 7)),
        ({"out_channels": 6, "kernel_size": 3, "dilation": 2, "groups": 2, "padding": "valid"}, (4, 9, 9)),
        ({"out_channels": 2, "kernel_size": 3, "padding": [1, 2], "padding_mode": "reflect"}, (3, 6, 6)),
    ],
    "pool": [
        ({"kernel_size": 2}, (3, 8, 8)),
        ({"kind": "avg", "kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}, (2, 8, 8)),
        ({"kind": "max", "kernel_size": 2, "ceil_mode": True}, (2, 9)),  # 1d, a last partial window
        ({"kind": "avg", "output_size": 3}, (2, 7, 7)),  # adaptive
        ({"kind": "max", "output_size": [2, 1]}, (2, 6, 5)),
    ],
    "flatten": [({}, (2, 3, 4)), ({"start_dim": 2}, (2, 3, 4)), ({"start_dim": 1, "end_dim": 2}, (2, 3, 4))],
    "linear": [
        ({"out_features": 5}, (7,)),
        ({"out_features": 5, "bias": False, "in_features": 7}, (4, 7)),  # over the last dim
    ],
    "batchnorm": [
        ({}, (4,)),  # BatchNorm1d over features
        ({}, (3, 5)),  # BatchNorm1d over channels of a sequence
        ({"momentum": None, "affine": False}, (3, 4, 4)),  # BatchNorm2d
        ({"num_features": 2}, (2, 3, 3, 3)),  # BatchNorm3d
    ],
    "layernorm": [({}, (6,)), ({"normalized_shape": [3, 4], "elementwise_affine": False}, (3, 4))],
    "dropout": [({"p": 0.3}, (5,)), ({}, (2, 3, 3))],
    "dropout2d": [({"p": 0.3}, (3, 4, 4))],
    "lstm": [
        ({"hidden_size": 3}, (5, 4)),
        ({"hidden_size": 3, "output": "all"}, (5, 4)),
        ({"hidden_size": 3, "output": "hidden", "bidirectional": True}, (5, 4)),
        ({"hidden_size": 3, "output": "all", "bidirectional": True, "num_layers": 2, "dropout": 0.1}, (5, 4)),
        ({"hidden_size": 3, "output": "last", "bidirectional": True, "bias": False}, (5, 4)),
    ],
    "gru": [
        ({"hidden_size": 3}, (5, 4)),
        ({"hidden_size": 3, "output": "all", "bidirectional": True}, (5, 4)),
        ({"hidden_size": 3, "output": "hidden", "num_layers": 3}, (5, 4)),
    ],
    "embedding": [({"num_embeddings": 10, "embedding_dim": 4, "padding_idx": 0}, (6,))],
    "relu": [({}, (3, 4))],
    "leaky_relu": [({"negative_slope": 0.2}, (5,))],
    "gelu": [({"approximate": "tanh"}, (5,))],
    "elu": [({"alpha": 0.5}, (2, 3, 3))],
    "tanh": [({}, (5,))],
    "sigmoid": [({}, (5,))],
    "softmax": [({}, (5,)), ({"dim": 1}, (3, 4))],
    "log_softmax": [({"dim": -2}, (3, 4))],
    "conv_transpose": [
        ({"out_channels": 3, "kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1}, (2, 5, 5)),
        ({"out_channels": 4, "kernel_size": 4, "stride": 2, "bias": False}, (2, 6)),  # 1d
        ({"out_channels": 2, "kernel_size": 2, "groups": 2, "dilation": 2}, (4, 3, 3, 3)),  # 3d
    ],
    "global_pool": [({}, (3, 5, 5)), ({"kind": "max", "keepdim": True}, (3, 4, 4)), ({}, (2, 7))],
    "group_norm": [({"num_groups": 2}, (4, 3, 3)), ({"num_groups": 3, "affine": False}, (6, 5))],
    "instance_norm": [({}, (3, 4, 4)), ({"affine": True, "track_running_stats": True}, (2, 5))],
    "permute": [({"dims": [0, 2, 3, 1]}, (3, 4, 5)), ({"dims": [0, -1, 1]}, (3, 4))],
    "transpose": [({}, (3, 4)), ({"dim0": -1, "dim1": 1}, (2, 3, 4))],
    "reshape": [({"shape": [2, -1]}, (3, 4)), ({"shape": [12]}, (3, 2, 2))],
    "unsqueeze": [({"dim": 1}, (4,)), ({"dim": -1}, (3, 4))],
    "squeeze": [({"dim": 2}, (4, 1)), ({"dim": 1}, (1, 3, 3))],
    "select": [({}, (5, 3)), ({"dim": 2, "index": 0}, (2, 4))],
    "identity": [({}, (3, 4))],
    "upsample": [
        ({"scale_factor": 2}, (2, 3, 3)),
        ({"mode": "bilinear", "size": [5, 7], "align_corners": False}, (2, 3, 3)),
        ({"mode": "bicubic", "scale_factor": [1.5, 2.0]}, (1, 4, 4)),
        ({"size": 6}, (2, 3)),  # nearest, 1d
    ],
    "pad": [
        ({"padding": 1}, (2, 3, 3)),
        ({"padding": [1, 2], "mode": "reflect"}, (2, 4)),
        ({"padding": [0, 1, 2, 0], "mode": "replicate"}, (2, 3, 3)),
        ({"padding": [1, 1], "value": 0.5}, (5,)),
    ],
    "pixel_shuffle": [({"upscale_factor": 2}, (8, 3, 3))],
    "add": [({}, [(3, 4), (3, 4)]), ({}, [(2,), (2,), (2,)])],
    "multiply": [({}, [(2, 3, 3), (2, 3, 3)])],
    "concat": [({}, [(2, 4), (3, 4)]), ({"dim": -1}, [(2, 3), (2, 5)])],
    "torchvision": [
        ({"name": "resnet18", "num_classes": 5}, (3, 32, 32)),
        ({"name": "resnet18", "features_only": True, "kwargs": {"zero_init_residual": True}}, (3, 32, 32)),
    ],
    "silu": [({}, (5,))],
    "mish": [({}, (2, 3))],
    "softplus": [({"beta": 2.0, "threshold": 10.0}, (5,))],
    "hardswish": [({}, (5,))],
    "prelu": [({}, (3, 4, 4)), ({"num_parameters": 3, "init": 0.1}, (3, 4, 4))],
    "scale": [({"multiply": 2.0, "add": 1.0}, (5,)), ({"add": 1.0}, (2, 3))],
}

KIND_NAMES = [kind.model_fields["type"].default for kind in LAYER_KINDS]
CASES = [
    pytest.param(kind, args, shape, id=f"{kind}-{i}")
    for kind in KIND_NAMES
    for i, (args, shape) in enumerate(EXAMPLES.get(kind, [({}, ())]))
]


def random_input(kind: str, args: dict, shape: tuple[int, ...]) -> torch.Tensor:
    if kind == "embedding":
        return torch.randint(0, args["num_embeddings"], (3, *shape))
    return torch.randn(3, *shape)


def test_every_layer_kind_has_examples():
    missing = [kind for kind in KIND_NAMES if kind not in EXAMPLES]
    assert not missing, f"add examples to tests/test_layers.py for {missing}"


@pytest.mark.parametrize("kind, args, shape", CASES)
def test_static_shape_and_parameters_match_the_built_module(kind, args, shape):
    if kind not in EXAMPLES:
        pytest.fail(f"layer kind '{kind}' has no example in tests/test_layers.py")
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
    if kind not in EXAMPLES:
        pytest.fail(f"layer kind '{kind}' has no example in tests/test_layers.py")
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
