"""Static shape inference: each layer's output shape from the input shape, no data and no forward.

A network is a topologically ordered node list: each layer reads the previous layer's output, or the
outputs its `from` names (earlier layers, or `input`). Every layer's own shape rule runs in order; a
failure is re-raised with the layer's index and kind attached (as torch.fx's ShapeProp re-raises
with the failing node). A block use is a nested network, inferred once per repeat. Parameter counts
come from building the modules on the meta device, which allocates nothing, so a 10^12-feature
linear is measured and refused before any memory is touched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from ..errors import Path, SpecError, SpecIssue, did_you_mean, format_path
from ..spec.layers import INPUT, BlockUse, Embedding, LayerSpec, Shape, fmt_shape
from ..spec.layers.conv import Conv, ConvTranspose

# Networks past this are refused at validate time: modelspec trains small and medium models, and a
# size this large is nearly always a typo (an extra zero, a missing pool).
MAX_PARAMETERS = 2_000_000_000
# Elements of one layer's output for one sample: 2^31 floats is 8 GB per sample, and past it some
# torch kernels index wrongly. A shape this large is a typo in a size or a missing pool.
MAX_SAMPLE_ELEMENTS = 2**31


INPUT_INDEX = -1  # the network's (or block's) input, as a source index


@dataclass(frozen=True)
class LayerShape:
    index: int
    layer: LayerSpec  # with num_classes resolved
    input_shape: Shape  # the first input's
    output_shape: Shape
    parameters: int
    sources: tuple[int, ...] = ()  # indices of the layers it reads (INPUT_INDEX: the input)
    input_shapes: tuple[Shape, ...] = ()  # one per source
    repeats: tuple["NetworkShapes", ...] = ()  # a block use: its body, once per repeat

    @property
    def key(self) -> str:
        """The name of its module: the layer's name, else its index (as nn.Sequential names them)."""
        return self.layer.name or str(self.index)


@dataclass(frozen=True)
class NetworkShapes:
    layers: list[LayerShape]
    input_shape: Shape
    path: Path = ()  # where the network is written: what fails at build time is located there too

    @property
    def output_shape(self) -> Shape:
        return self.layers[-1].output_shape if self.layers else self.input_shape

    @property
    def parameters(self) -> int:
        return sum(layer.parameters for layer in self.layers)

    @property
    def is_stack(self) -> bool:
        """Every layer reads the one before it: an nn.Sequential computes it."""
        return all(row.sources == (row.index - 1,) and not row.layer.takes_list for row in self.layers)


def _resolve_num_classes(layer: LayerSpec, num_classes: int | None) -> LayerSpec:
    return layer if num_classes is None else layer.with_num_classes(num_classes)


def _sources(layer: LayerSpec, index: int, names: dict[str, int]) -> tuple[int, ...]:
    """The indices `from` names (or the previous layer); unknown names get a did-you-mean."""
    if layer.sources is None:
        return (index - 1,)
    out = []
    for source in layer.sources:
        if source == INPUT:
            out.append(INPUT_INDEX)
        elif source in names:
            out.append(names[source])
        else:
            known = [INPUT, *names]
            raise SpecError(
                f"from: '{source}' names no earlier layer",
                path=("from",),
                hint=did_you_mean(source, known) or "earlier layers' names: " + ", ".join(known),
            )
    return tuple(out)


def _check_conv_over_tokens(layer: LayerSpec, producers: Sequence[LayerSpec | None]) -> None:
    """An embedding gives (T, E); a conv reading it directly would take the T steps as channels and
    slide over the E embedding dims, which validates and trains, silently wrong."""
    if isinstance(layer, (Conv, ConvTranspose)) and any(isinstance(p, Embedding) for p in producers):
        raise SpecError(
            f"{layer.type} reads the embedding's (T, E) output directly: it would take the T time steps "
            "as channels and slide over the embedding dims",
            hint="put `transpose` (dims 1 and 2) before it, so that it sees (E, T) and runs over time",
        )


def _check_tokens(layer: LayerSpec, sources: Sequence[int], tokens: bool) -> None:
    reads_input = INPUT_INDEX in sources
    if isinstance(layer, Embedding) and (not reads_input or not tokens):
        raise SpecError(
            "embedding takes integer tokens, so it must be the first layer (in a graph: read `input`) "
            "and the data be tokens",
            hint="for synthetic data give data.vocab_size; otherwise remove the embedding",
        )
    if reads_input and tokens and not isinstance(layer, Embedding):
        raise SpecError(
            f"the data are integer tokens, which {layer.type} cannot take",
            hint="start the network with `embedding`",
        )


def _meta_parameters(layer: LayerSpec, input_shapes: Sequence[Shape]) -> int:
    try:
        with torch.device("meta"):
            module = layer.graph_build(input_shapes)
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
    if isinstance(exc, _InBlock):  # located at the block's definition already
        return exc
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
    shapes = _infer(layers, tuple(input_shape), num_classes, tokens, path)
    total = shapes.parameters
    if total > MAX_PARAMETERS:
        raise SpecError(
            f"the network has {total:,} parameters ({total * 4 / 1e9:,.1f} GB of float32 weights); "
            f"modelspec refuses networks over {MAX_PARAMETERS:,}",
            path=path,
        )
    return shapes


def _infer(layers: list[LayerSpec], input_shape: Shape, num_classes: int | None, tokens: bool,
           path: Path) -> NetworkShapes:
    rows: list[LayerShape] = []
    names: dict[str, int] = {}
    for index, spec_layer in enumerate(layers):
        layer = _resolve_num_classes(spec_layer, num_classes)
        where = path + (index, layer.type)
        try:
            if layer.name in names or layer.name == INPUT:
                raise SpecError(
                    f"the name '{layer.name}' is taken" + (" by the network's input" if layer.name == INPUT
                                                           else f" by layer {names[layer.name]}"),
                    path=("name",), hint="give each layer its own name",
                )
            sources = _sources(layer, index, names)
            _check_tokens(layer, sources, tokens)
            _check_conv_over_tokens(layer, [None if s == INPUT_INDEX else rows[s].layer for s in sources])
            inputs = tuple(input_shape if s == INPUT_INDEX else rows[s].output_shape for s in sources)
            if isinstance(layer, BlockUse):
                rows.append(_block_row(layer, index, sources, inputs, num_classes, where))
            else:
                output = tuple(layer.graph_output_shape(inputs))
                parameters = _meta_parameters(layer, inputs)
                _check_size(parameters, output)
                rows.append(LayerShape(index, layer, inputs[0], output, parameters, sources, inputs))
        except SpecError as exc:
            raise _located(exc, where) from None
        if layer.name is not None:
            names[layer.name] = index
    return NetworkShapes(rows, input_shape, path)


class _InBlock(SpecError):
    """An error inside a block's body: already located at the block's definition, so the use site
    adds its own place to the message instead of to the path."""


def _block_row(use: BlockUse, index: int, sources: tuple[int, ...], inputs: tuple[Shape, ...],
               num_classes: int | None, where: Path) -> LayerShape:
    if len(inputs) != 1:
        raise SpecError(f"a block takes one input; received {len(inputs)}", path=("from",))
    repeats, shape = [], inputs[0]
    for n in range(use.repeat):
        try:
            body = _infer(use.body, shape, num_classes, False, use.definition)
        except _InBlock:
            raise
        except SpecError as exc:
            at = format_path(where[:-1]) + (f", repeat {n + 1} of {use.repeat}" if use.repeat > 1 else "")
            raise _InBlock([
                SpecIssue(f"in block '{use.block}' used at {at} (input {fmt_shape(shape)}): {i.message}", i.path, i.hint)
                for i in exc.issues
            ]) from None
        repeats.append(body)
        shape = body.output_shape
    parameters = sum(r.parameters for r in repeats)
    return LayerShape(index, use, inputs[0], shape, parameters, sources, inputs, tuple(repeats))


def _step_flow(shapes: NetworkShapes,
               given: LayerShape | None = None) -> tuple[dict[int, LayerShape], dict[int, LayerShape]]:
    """(readers, blocks): the layers that take sequence lengths (lstm, gru) and read a token
    embedding's time steps unmixed, and the block uses that read those steps, each with that
    embedding's row. Every layer in between keeps the steps (dropout, layernorm, an element-wise kind,
    a linear on each step, a recurrent layer's `all` outputs). `given`: the embedding whose steps the
    network's input holds (a block body's)."""
    steps_of = {} if given is None else {INPUT_INDEX: given}  # index -> the embedding its output holds
    readers, blocks = {}, {}
    for row in shapes.layers:
        if isinstance(row.layer, Embedding) and row.sources == (INPUT_INDEX,):
            steps_of[row.index] = row
            continue
        embedding = steps_of.get(row.sources[0]) if len(row.sources) == 1 else None
        if embedding is None:
            continue
        if row.repeats:
            blocks[row.index] = embedding
            continue
        if row.layer.takes_lengths:
            readers[row.index] = embedding
        if row.layer.keeps_steps(row.input_shape):
            steps_of[row.index] = embedding
    return readers, blocks


def length_readers(shapes: NetworkShapes) -> dict[int, LayerShape]:
    """The layers of this network that get the lengths of the token steps they read, and the embedding."""
    return _step_flow(shapes)[0]


def _reads_steps(body: NetworkShapes, embedding: LayerShape) -> bool:
    readers, blocks = _step_flow(body, embedding)
    return bool(readers) or any(_reads_steps(body.layers[i].repeats[0], embedding) for i in blocks)


def check_padding(shapes: NetworkShapes, pad_id: int | None, path: Path = ()) -> None:
    """Data padded with `pad_id` at the end (texts): a recurrent layer reading the embedding's steps
    must know which steps are padding, from the embedding's padding_idx; else it reads the padding."""
    readers, blocks = _step_flow(shapes)
    for index, embedding in readers.items():
        if pad_id is None or embedding.layer.padding_idx == pad_id:
            continue
        reader = shapes.layers[index].layer.type
        given = "has no padding_idx" if embedding.layer.padding_idx is None else \
            f"has padding_idx={embedding.layer.padding_idx}"
        raise SpecError(
            f"the data's texts are padded at the end with <pad> = {pad_id}, but the embedding that {reader} "
            f"{format_path(path + (index,))} reads {given}: {reader} would read the padding after each text "
            "as words",
            path=path + (embedding.index, embedding.layer.type, "padding_idx"),
            hint=f"give the embedding padding_idx: {pad_id}; {reader} then reads only each text's real tokens",
        )
    for index, embedding in blocks.items():
        padded = pad_id is not None or embedding.layer.padding_idx is not None
        if padded and _reads_steps(shapes.layers[index].repeats[0], embedding):
            use = shapes.layers[index].layer
            raise SpecError(
                f"block '{use.block}' has an lstm or gru that reads the padded token steps: only those "
                "written in the network's own list are given each sequence's length, so it would read the "
                "padding after each sequence",
                path=path + (index,),
                hint="write the lstm or gru (and the layers before it) in the network's list; the block can "
                     "hold the layers after it",
            )


def activation_elements(shapes: NetworkShapes) -> int:
    """Elements of every layer output for one sample: a rough guide to activation memory."""
    return sum(math.prod(row.output_shape) for row in shapes.layers)
