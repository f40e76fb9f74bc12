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
from .base import ExportExample, LayerSpec, Shape, check_given, fmt_shape

# What the layer hands on: the output at the last step (N, H·D), the outputs at all steps
# (N, T, H·D), or the last layer's final hidden state (N, H·D; D=2 when bidirectional).
Output = Literal["last", "all", "hidden"]


class _Recurrent(LayerSpec):
    hidden_size: PositiveInt
    """Features of the hidden state, per direction."""
    # Deep stacks are a typo: torch takes seconds to build 1,000 layers, even on the meta device.
    num_layers: PositiveInt = Field(1, le=100)
    """How many recurrent layers to stack, up to 100 (default 1)."""
    bidirectional: bool = False
    """Whether to run a second layer over the reversed sequence and join both outputs, doubling the output
    width (default false)."""
    dropout: float = Field(0.0, ge=0.0, le=1.0)
    """Dropout between stacked layers (not after the last), 0 to 1, as torch applies it (default 0.0)."""
    bias: bool = True
    """Whether to learn bias weights (default true)."""
    # modelspec tensors are always batch first (N, T, F); the field exists so torch code reads the same.
    batch_first: Literal[True] = True
    """Always true: modelspec's tensors are batch first, (N, T, F)."""
    output: Output = "last"
    """What the layer hands on: `last` (default), the output at the last real step (N, H·D); `all`, the
    outputs at all steps (N, T, H·D); `hidden`, the last layer's final hidden state (N, H·D), with D = 2
    when bidirectional."""
    takes_lengths: ClassVar[bool] = True
    input_size: PositiveInt | None = None
    """Features per step of the input; omit it to infer it from the input's last dim, or give it to have it
    checked."""

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
    """Long short-term memory, `nn.LSTM`, over a (T, F) sequence, batch first; padded token sequences are read
    up to their real length. input_size is inferred from the input."""

    type: Literal["lstm"] = "lstm"

    examples = (
        ({"hidden_size": 3}, (5, 4)),
        ({"hidden_size": 3, "output": "all"}, (5, 4)),
        ({"hidden_size": 3, "output": "hidden", "bidirectional": True}, (5, 4)),
        ({"hidden_size": 3, "output": "all", "bidirectional": True, "num_layers": 2, "dropout": 0.1}, (5, 4)),
        ({"hidden_size": 3, "output": "last", "bidirectional": True, "bias": False}, (5, 4)),
    )
    export_example = ExportExample((7, 4), ({"lstm": {"hidden_size": 6, "num_layers": 2}},))  # (T, F) floats

    def build(self, input_shape: Shape) -> nn.Module:
        from ._recurrent import LSTMBlock

        return LSTMBlock(nn.LSTM(**self._rnn_args(input_shape)), self.output)


class GRU(_Recurrent):
    """Gated recurrent unit, `nn.GRU`, over a (T, F) sequence, batch first; padded token sequences are read up
    to their real length. input_size is inferred from the input."""

    type: Literal["gru"] = "gru"

    examples = (
        ({"hidden_size": 3}, (5, 4)),
        ({"hidden_size": 3, "output": "all", "bidirectional": True}, (5, 4)),
        ({"hidden_size": 3, "output": "hidden", "num_layers": 3}, (5, 4)),
    )
    export_example = ExportExample(
        (9,),
        (
            {"embedding": {"num_embeddings": 20, "embedding_dim": 5}},
            {"gru": {"hidden_size": 6, "bidirectional": True, "output": "all"}},
        ),
        vocab_size=20,
    )

    def build(self, input_shape: Shape) -> nn.Module:
        from ._recurrent import GRUBlock

        return GRUBlock(nn.GRU(**self._rnn_args(input_shape)), self.output)
