"""Static shape inference: each layer's output shape from the input shape, no data and no forward.

Every layer's own `output_shape` rule runs in order; a failure is re-raised with the layer's index and
kind attached (as torch.fx's ShapeProp re-raises with the failing node). Parameter counts come from
building the modules on the meta device, which allocates nothing, so a 10^12-feature linear is
measured and refused before any memory is touched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import Path, SpecError, SpecIssue
from ..spec.layers import Embedding, LayerSpec, Linear, Shape, fmt_shape

# Networks past this are refused at validate time: modelspec trains small and medium models, and a
# size this large is nearly always a typo (an extra zero, a missing pool).
MAX_PARAMETERS = 2_000_000_000
# Elements of one layer's output for one sample: 2^31 floats is 8 GB per sample, and past it some
# torch kernels index wrongly. A shape this large is a typo in a size or a missing pool.
MAX_SAMPLE_ELEMENTS = 2**31
CLASSIFICATION_LOSSES = ("cross_entropy", "nll", "multi_margin")


@dataclass(frozen=True)
class LayerShape:
    index: int
    layer: LayerSpec  # with num_classes resolved
    input_shape: Shape
    output_shape: Shape
    parameters: int


@dataclass(frozen=True)
class NetworkShapes:
    layers: list[LayerShape]
    input_shape: Shape

    @property
    def output_shape(self) -> Shape:
        return self.layers[-1].output_shape if self.layers else self.input_shape

    @property
    def parameters(self) -> int:
        return sum(layer.parameters for layer in self.layers)


def _resolve_num_classes(layer: LayerSpec, num_classes: int | None) -> LayerSpec:
    if isinstance(layer, Linear) and layer.out_features == "num_classes" and num_classes is not None:
        return layer.model_copy(update={"out_features": num_classes})
    return layer


def _meta_parameters(layer: LayerSpec, input_shape: Shape) -> int:
    try:
        with torch.device("meta"):
            module = layer.build(input_shape)
    except (RuntimeError, TypeError) as exc:
        # torch sizes are int64: past that it raises "Overflow when unpacking long long" or
        # "Storage size calculation overflowed" before any check of ours could count the weights.
        if "overflow" not in str(exc).lower():
            raise
        raise SpecError(
            f"{layer.type}'s weights would have more than 2^63 elements: torch cannot even describe them",
            hint="check the sizes for extra digits",
        ) from None
    return sum(p.numel() for p in module.parameters())


def _check_size(parameters: int, output: Shape) -> None:
    """Refuse a layer too large to train here, with what it would take."""
    if parameters > MAX_PARAMETERS:
        raise SpecError(
            f"this layer has {parameters:,} parameters: {parameters * 4 / 1e9:,.1f} GB of float32 weights, "
            f"several times that to train; modelspec refuses networks over {MAX_PARAMETERS:,}",
            hint="check the sizes for an extra zero, or add pooling before it",
        )
    elements = math.prod(output)
    if elements > MAX_SAMPLE_ELEMENTS:
        raise SpecError(
            f"the output {fmt_shape(output)} has {elements:,} elements per sample ({elements * 4 / 1e9:,.1f} GB "
            f"of float32); modelspec refuses more than {MAX_SAMPLE_ELEMENTS:,}",
            hint="check the sizes for an extra zero, or add pooling before it",
        )


def _located(exc: SpecError, prefix: Path) -> SpecError:
    return SpecError([SpecIssue(i.message, prefix + i.path, i.hint) for i in exc.issues])


def infer_shapes(
    layers: list[LayerSpec],
    input_shape: Shape,
    num_classes: int | None = None,
    *,
    tokens: bool = False,
    path: Path = (),
) -> NetworkShapes:
    """Run the shape rules of `layers` over `input_shape` (per sample). `tokens`: integer input."""
    shape = tuple(input_shape)
    rows: list[LayerShape] = []
    for index, spec_layer in enumerate(layers):
        layer = _resolve_num_classes(spec_layer, num_classes)
        where = path + (index, layer.type)
        try:
            if isinstance(layer, Embedding) and (index > 0 or not tokens):
                raise SpecError(
                    "embedding takes integer tokens, so it must be the first layer and the data tokens",
                    hint="for synthetic data give data.vocab_size; otherwise remove the embedding",
                )
            if index == 0 and tokens and not isinstance(layer, Embedding):
                raise SpecError(
                    f"the data are integer tokens, which {layer.type} cannot take",
                    hint="start the network with `embedding`",
                )
            output = tuple(layer.output_shape(shape))
            parameters = _meta_parameters(layer, shape)
            _check_size(parameters, output)
        except SpecError as exc:
            raise _located(exc, where) from None
        rows.append(LayerShape(index, layer, shape, output, parameters))
        shape = output
    total = sum(row.parameters for row in rows)
    if total > MAX_PARAMETERS:
        raise SpecError(
            f"the network has {total:,} parameters ({total * 4 / 1e9:,.1f} GB of float32 weights); "
            f"modelspec refuses networks over {MAX_PARAMETERS:,}",
            path=path,
        )
    return NetworkShapes(rows, tuple(input_shape))


def check_classifier_output(shapes: NetworkShapes, num_classes: int, loss: str, path: Path) -> None:
    """A classification loss needs (num_classes,) logits per sample; say so before training."""
    if loss not in CLASSIFICATION_LOSSES:
        return
    output = shapes.output_shape
    if output != (num_classes,):
        last = shapes.layers[-1] if shapes.layers else None
        hint = "end the network with `linear: {out_features: num_classes}`"
        if len(output) > 1:
            hint = "add `flatten` before the first linear, and " + hint[0].lower() + hint[1:]
        raise SpecError(
            f"the network's output is {fmt_shape(output)} per sample, but {loss} needs "
            f"{num_classes} class scores ({num_classes} classes)",
            path=path + ((last.index, last.layer.type) if last else ()),
            hint=hint,
        )


def activation_elements(shapes: NetworkShapes) -> int:
    """Elements of every layer output for one sample: a rough guide to activation memory."""
    return sum(math.prod(row.output_shape) for row in shapes.layers)
