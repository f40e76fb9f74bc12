"""lstm and gru over a (T, F) sequence, batch first, with a choice of which output goes on.

Token sequences are padded at their end (texts, to data.max_length). A recurrent layer that reads such
steps gets each sequence's real length as a second argument (the compiled network computes it from
the token ids, so every export carries it) and reads only the real steps, exactly as over a packed
sequence: one direction runs as ever and its output is taken at the last real step (padding after it
cannot reach back); the backward direction runs over each sequence reversed within its length. Both
use the op nn.LSTM/nn.GRU calls, which every export format takes; pack_padded_sequence does not
export with torch.export.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from ...errors import SpecError
from .._torch import nn
from ..base import PositiveInt
from .base import LayerSpec, Shape, check_given, fmt_shape

# What the layer hands on: the output at the last step (N, H·D), the outputs at all steps
# (N, T, H·D), or the last layer's final hidden state (N, H·D; D=2 when bidirectional).
Output = Literal["last", "all", "hidden"]


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
    takes_lengths: ClassVar[bool] = True
    input_size: PositiveInt | None = None  # inferred: the input's feature dim

    @property
    def label(self) -> str:
        return f"{self.type} {self.hidden_size} ({self.output})"

    def keeps_steps(self, input_shape: Shape) -> bool:
        return self.output == "all"  # padding steps come out as zeros, still at the end

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
        from ._recurrent import LSTMBlock

        return LSTMBlock(nn.LSTM(**self._rnn_args(input_shape)), self.output)


class GRU(_Recurrent):
    type: Literal["gru"] = "gru"

    def build(self, input_shape: Shape) -> nn.Module:
        from ._recurrent import GRUBlock

        return GRUBlock(nn.GRU(**self._rnn_args(input_shape)), self.output)
