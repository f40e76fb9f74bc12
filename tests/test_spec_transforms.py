"""Every transform kind: the static shape rule that validate uses agrees with torchvision."""

from __future__ import annotations

import pytest
import torch
from pydantic import TypeAdapter

from modelspec.errors import SpecError
from modelspec.spec.transforms import TRANSFORM_KINDS, Transform

TRANSFORM = TypeAdapter(Transform)
STATS = ([0.5, 0.5, 0.5], [0.25, 0.25, 0.25])  # what `normalize: auto` gets from the data

# kind -> [(arguments, (C, H, W) of the image)]
EXAMPLES: dict[str, list[tuple[dict, tuple[int, int, int]]]] = {
    "to_tensor": [({}, (3, 5, 7))],
    "normalize": [({}, (3, 5, 7)), ({"mean": [0.1], "std": [0.3]}, (1, 4, 4))],
    "resize": [({"size": 4}, (3, 10, 7)), ({"size": 9}, (1, 6, 13)), ({"size": [5]}, (1, 8, 8)),
               ({"size": [3, 11]}, (3, 6, 6))],
    "center_crop": [({"size": 4}, (3, 10, 7)), ({"size": [2, 5]}, (1, 6, 6))],
    "random_crop": [({"size": 4}, (3, 10, 7)), ({"size": [6, 9], "padding": 2}, (1, 6, 6)),
                    ({"size": [8, 8], "padding": [1, 2]}, (1, 6, 6)), ({"size": [7, 9], "padding": [2, 1, 1, 0]}, (1, 6, 6))],
    "random_horizontal_flip": [({"p": 1.0}, (3, 5, 7))],
    "random_rotation": [({"degrees": 30}, (3, 5, 7)), ({"degrees": [-10, 10]}, (1, 4, 4))],
    "grayscale": [({}, (3, 5, 7)), ({"num_output_channels": 3}, (3, 5, 7))],
}
KIND_NAMES = [kind.model_fields["type"].default for kind in TRANSFORM_KINDS]


def test_every_transform_kind_has_examples():
    missing = [kind for kind in KIND_NAMES if kind not in EXAMPLES]
    assert not missing, f"add examples to tests/test_spec_transforms.py for {missing}"


@pytest.mark.parametrize(
    "kind, args, shape",
    [pytest.param(k, a, s, id=f"{k}-{i}") for k in EXAMPLES for i, (a, s) in enumerate(EXAMPLES[k])],
)
def test_static_shape_matches_torchvision(kind, args, shape):
    transform = TRANSFORM.validate_python({kind: args})
    image = torch.randint(0, 256, shape, dtype=torch.uint8)
    if kind not in ("to_tensor", "normalize"):
        out = transform.build(STATS)(image)
    else:  # normalize works on floats: the to_tensor before it in a spec
        to_tensor = TRANSFORM.validate_python("to_tensor").build()
        out = transform.build(STATS)(to_tensor(image)) if kind == "normalize" else to_tensor(image)
    assert tuple(out.shape) == transform.output_shape(shape)
    assert TRANSFORM.validate_python(transform.model_dump()) == transform


def test_a_resize_to_one_edge_keeps_the_unknown_size_unknown():
    # An image folder's size is known only from the data: a resize to [h, w] fixes it, one edge not.
    resize = TRANSFORM.validate_python({"resize": {"size": 8}})
    assert resize.output_shape((3, None, None)) == (3, None, None)
    assert TRANSFORM.validate_python({"resize": {"size": [8, 6]}}).output_shape((3, None, None)) == (3, 8, 6)


@pytest.mark.parametrize("padding", [None, [1, 0], [2, 0, 0, 0]])
def test_a_random_crop_larger_than_the_padded_image_is_refused(padding):
    crop = TRANSFORM.validate_python({"random_crop": {"size": 8, "padding": padding}})
    with pytest.raises(SpecError, match="larger than the image"):
        crop.output_shape((1, 6, 6))
    with pytest.raises(ValueError, match="larger than"):  # as torchvision would
        crop.build()(torch.zeros(1, 6, 6))
