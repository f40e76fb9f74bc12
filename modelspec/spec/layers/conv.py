"""conv: nn.Conv1d / Conv2d / Conv3d, picked from the input rank."""

from __future__ import annotations

from typing import Literal

from ...errors import SpecError
from .._torch import nn
from ..base import NonNegativeInt, PositiveInt
from .base import ExportExample, LayerSpec, Shape, check_given, fmt_shape, per_dim, sliding_output, spatial_rank

_CONV = {1: "Conv1d", 2: "Conv2d", 3: "Conv3d"}  # nn's, by input rank


def _in_channels(layer: LayerSpec, input_shape: Shape) -> int:
    """The input's channels (checked against a given in_channels); groups must divide both sides."""
    in_channels = check_given(layer, "in_channels", input_shape[0], "channels")
    for name, channels in (("in_channels", in_channels), ("out_channels", layer.out_channels)):
        if channels % layer.groups:
            raise SpecError(
                f"groups={layer.groups} does not divide {name}={channels}",
                path=("groups",),
                hint="groups must divide both in_channels and out_channels",
            )
    return in_channels


class Conv(LayerSpec):
    """Convolution, `nn.Conv1d`/`Conv2d`/`Conv3d` picked from the input rank ((C, L), (C, H, W) or (C, D, H,
    W)); in_channels and dim are inferred from the input, so only out_channels and kernel_size are needed."""

    type: Literal["conv"] = "conv"
    out_channels: PositiveInt
    """Channels of the output: the number of learned filters."""
    kernel_size: PositiveInt | list[PositiveInt]
    """The window's size: one number for every spatial dim, or a list with one per dim."""
    stride: PositiveInt | list[PositiveInt] = 1
    """The window's step: one number, or one per spatial dim (default 1)."""
    padding: NonNegativeInt | list[NonNegativeInt] | Literal["same", "valid"] = 0
    """Zeros (or `padding_mode` values) added on both sides: a number, one per dim, `same` (keeps the size;
    stride 1 only) or `valid` (none). Default 0."""
    dilation: PositiveInt | list[PositiveInt] = 1
    """Spacing between the kernel's taps: one number, or one per spatial dim (default 1)."""
    groups: PositiveInt = 1
    """Splits the channels into this many groups convolved separately; must divide in_channels and
    out_channels (default 1; in_channels gives a depthwise conv)."""
    bias: bool = True
    """Whether to learn an additive bias per output channel (default true)."""
    padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = "zeros"
    """What the padding holds: `zeros` (default), `reflect`, `replicate` or `circular`."""
    in_channels: PositiveInt | None = None
    """Channels of the input; omit it to infer it from the input (dim 0), or give it to have it checked."""
    dim: Literal[1, 2, 3] | None = None
    """1, 2 or 3 spatial dims; omit it to pick it from the input's rank, or give it to have it checked."""

    examples = (
        ({"out_channels": 4, "kernel_size": 3}, (2, 8, 8)),
        ({"out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 1}, (2, 9)),  # 1d
        ({"out_channels": 3, "kernel_size": 2, "bias": False}, (1, 4, 5, 6)),  # 3d
        ({"out_channels": 6, "kernel_size": [3, 1], "padding": "same"}, (2, 7, 7)),
        ({"out_channels": 6, "kernel_size": 3, "dilation": 2, "groups": 2, "padding": "valid"}, (4, 9, 9)),
        ({"out_channels": 2, "kernel_size": 3, "padding": [1, 2], "padding_mode": "reflect"}, (3, 6, 6)),
    )
    export_example = ExportExample(
        (2, 6, 6), ({"conv": {"out_channels": 4, "kernel_size": 3, "padding": 1}}, "flatten")
    )

    @property
    def label(self) -> str:
        return f"conv {self.out_channels}, k={self.kernel_size}"

    def _geometry(self, input_shape: Shape):
        rank = spatial_rank(self, input_shape, self.dim, "conv")
        in_channels = _in_channels(self, input_shape)
        kernel = per_dim(self.kernel_size, rank, "kernel_size")
        stride = per_dim(self.stride, rank, "stride")
        dilation = per_dim(self.dilation, rank, "dilation")
        return rank, in_channels, kernel, stride, dilation

    def output_shape(self, input_shape: Shape) -> Shape:
        rank, _, kernel, stride, dilation = self._geometry(input_shape)
        if self.padding == "same":
            if any(s != 1 for s in stride):
                raise SpecError(
                    "padding='same' needs stride 1", path=("padding",), hint="give padding as numbers"
                )
            return (self.out_channels, *input_shape[1:])
        padding = (0,) * rank if self.padding == "valid" else per_dim(self.padding, rank, "padding")
        sizes = sliding_output(self, input_shape[1:], kernel, stride, padding, dilation)
        return (self.out_channels, *sizes)

    def build(self, input_shape: Shape) -> nn.Module:
        rank, in_channels, kernel, stride, dilation = self._geometry(input_shape)
        padding = self.padding if isinstance(self.padding, str) else per_dim(self.padding, rank, "padding")
        return getattr(nn, _CONV[rank])(
            in_channels,
            self.out_channels,
            kernel,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=self.groups,
            bias=self.bias,
            padding_mode=self.padding_mode,
        )


_CONV_TRANSPOSE = {1: "ConvTranspose1d", 2: "ConvTranspose2d", 3: "ConvTranspose3d"}


class ConvTranspose(LayerSpec):
    """Transposed convolution (a learned upsampling), `nn.ConvTranspose1d`/`2d`/`3d` picked from the input
    rank; in_channels and dim are inferred from the input."""

    type: Literal["conv_transpose"] = "conv_transpose"
    out_channels: PositiveInt
    """Channels of the output: the number of learned filters."""
    kernel_size: PositiveInt | list[PositiveInt]
    """The window's size: one number for every spatial dim, or a list with one per dim."""
    stride: PositiveInt | list[PositiveInt] = 1
    """The upsampling step: one number, or one per spatial dim (default 1)."""
    padding: NonNegativeInt | list[NonNegativeInt] = 0
    """Removes this much from both sides of the output, as torch's ConvTranspose does: a number or one per dim
    (default 0)."""
    output_padding: NonNegativeInt | list[NonNegativeInt] = 0
    """Extra size added on one side of the output, to pick among the sizes a strided conv maps back to; must
    be smaller than the stride or the dilation (default 0)."""
    dilation: PositiveInt | list[PositiveInt] = 1
    """Spacing between the kernel's taps: one number, or one per spatial dim (default 1)."""
    groups: PositiveInt = 1
    """Splits the channels into this many groups; must divide in_channels and out_channels (default 1)."""
    bias: bool = True
    """Whether to learn an additive bias per output channel (default true)."""
    in_channels: PositiveInt | None = None
    """Channels of the input; omit it to infer it from the input (dim 0), or give it to have it checked."""
    dim: Literal[1, 2, 3] | None = None
    """1, 2 or 3 spatial dims; omit it to pick it from the input's rank, or give it to have it checked."""

    examples = (
        ({"out_channels": 3, "kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1}, (2, 5, 5)),
        ({"out_channels": 4, "kernel_size": 4, "stride": 2, "bias": False}, (2, 6)),  # 1d
        ({"out_channels": 2, "kernel_size": 2, "groups": 2, "dilation": 2}, (4, 3, 3, 3)),  # 3d
    )
    export_example = ExportExample(
        (2, 6, 6),
        (
            {"conv_transpose": {"out_channels": 3, "kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1}},
            "flatten",
        ),
    )

    @property
    def label(self) -> str:
        return f"conv_transpose {self.out_channels}, k={self.kernel_size}"

    def _geometry(self, input_shape: Shape):
        rank = spatial_rank(self, input_shape, self.dim, "conv_transpose")
        in_channels = _in_channels(self, input_shape)
        args = {name: per_dim(getattr(self, name), rank, name)
                for name in ("kernel_size", "stride", "padding", "output_padding", "dilation")}
        for s, d, op in zip(args["stride"], args["dilation"], args["output_padding"]):
            if op >= max(s, d):
                raise SpecError(
                    f"output_padding={self.output_padding} must be smaller than the stride or the dilation",
                    path=("output_padding",),
                    hint="output_padding only picks among the sizes a stride maps back to",
                )
        return rank, in_channels, args

    def output_shape(self, input_shape: Shape) -> Shape:
        _, _, a = self._geometry(input_shape)
        sizes = tuple(
            (n - 1) * s - 2 * p + d * (k - 1) + op + 1
            for n, k, s, p, op, d in zip(input_shape[1:], a["kernel_size"], a["stride"], a["padding"],
                                        a["output_padding"], a["dilation"])
        )
        if any(size <= 0 for size in sizes):
            raise SpecError(
                f"padding {self.padding} leaves an empty output for the input {fmt_shape(input_shape)}",
                path=("padding",),
                hint="use less padding",
            )
        return (self.out_channels, *sizes)

    def build(self, input_shape: Shape) -> nn.Module:
        rank, in_channels, a = self._geometry(input_shape)
        return getattr(nn, _CONV_TRANSPOSE[rank])(in_channels, self.out_channels, groups=self.groups, bias=self.bias, **a)
