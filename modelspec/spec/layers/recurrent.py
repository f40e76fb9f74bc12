"""lstm and gru over a (T, F) sequence, batch first, with a choice of which output goes on."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from ...errors import SpecError
from ..base import PositiveInt
from .base import LayerSpec, Shape, check_given, fmt_shape

# What the layer hands on: the output at the last step (N, H·D), the outputs at all steps
# (N, T, H·D), or the last layer's final hidden state (N, H·D; D=2 when bidirectional).
Output = Literal["last", "all", "hidden"]


class _RecurrentBlock(nn.Module):
    """An RNN plus the choice of output, so that the layer fits in an nn.Sequential."""

    def __init__(self, rnn: nn.Module, output: str):
        super().__init__()
        self.rnn = rnn
        self.output = output
        self.bidirectional = bool(rnn.bidirectional)

    def select(self, out: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        if self.output == "all":
            return out  # (N, T, H·D)
        if self.output == "last":
            return out[:, -1]  # (N, H·D)
        if self.bidirectional:  # h: (layers·2, N, H); the last layer's two directions
            return torch.cat([h[-2], h[-1]], dim=1)
        return h[-1]


class LSTMBlock(_RecurrentBlock):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, (h, _) = self.rnn(x)
        return self.select(out, h)


class GRUBlock(_RecurrentBlock):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, h = self.rnn(x)
        return self.select(out, h)


class _Recurrent(LayerSpec):
    hidden_size: PositiveInt
    # Deep stacks are a typo: torch takes seconds to build 1,000 layers, even on the meta device.
    num_layers: PositiveInt = Field(1, le=100)
    bidirectional: bool = False
    dropout: float = Field(0.0, ge=0.0, le=1.0)  # between stacked layers, as torch applies it
    bias: bool = True
    # modelspec tensors are always batch first (N, T, F); the field exists so torch code reads the same.
    batch_first: Literal[True] = True
    output: Output = "last"
    input_size: PositiveInt | None = None  # inferred: the input's feature dim

    @property
    def label(self) -> str:
        return f"{self.type} {self.hidden_size} ({self.output})"

    def _input_size(self, input_shape: Shape) -> int:
        if len(input_shape) != 2:
            raise SpecError(
                f"{self.type} needs a (T, F) sequence per sample; received {fmt_shape(input_shape)}",
                hint="feed it an embedding, or data shaped (sequence length, features)",
            )
        return check_given(self, "input_size", input_shape[1], "features per step")

    def output_shape(self, input_shape: Shape) -> Shape:
        self._input_size(input_shape)
        width = self.hidden_size * (2 if self.bidirectional else 1)
        return (input_shape[0], width) if self.output == "all" else (width,)

    def _rnn_args(self, input_shape: Shape) -> dict:
        return dict(
            input_size=self._input_size(input_shape),
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            bias=self.bias,
            batch_first=True,
            dropout=self.dropout if self.num_layers > 1 else 0.0,
            bidirectional=self.bidirectional,
        )


class LSTM(_Recurrent):
    type: Literal["lstm"] = "lstm"

    def build(self, input_shape: Shape) -> nn.Module:
        return LSTMBlock(nn.LSTM(**self._rnn_args(input_shape)), self.output)


class GRU(_Recurrent):
    type: Literal["gru"] = "gru"

    def build(self, input_shape: Shape) -> nn.Module:
        return GRUBlock(nn.GRU(**self._rnn_args(input_shape)), self.output)
