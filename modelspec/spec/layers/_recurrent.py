"""The torch modules of lstm and gru: an RNN plus the choice of output, and the masked recurrence
over token sequences padded at their end (see recurrent.py). Kept apart from the specs, which import
torch only when they build (spec/_torch.py).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import _VF, nn


class SequenceLengths(nn.Module):
    """Each token sequence's real length (N,): up to its last token that is not padding (at least 1,
    so that a text with no token still gives an output). No weights: the state dict is unchanged."""

    def __init__(self, pad_id: int):
        super().__init__()
        self.pad_id = pad_id

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, T) token ids
        steps = torch.arange(1, x.size(1) + 1, device=x.device)
        return ((x != self.pad_id).long() * steps).amax(1).clamp(min=1)


def _at_steps(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x (N, T, F) at the steps `index` (N, T') of each sequence: (N, T', F)."""
    return x.gather(1, index.unsqueeze(2).expand(-1, -1, x.size(2)))


class _RecurrentBlock(nn.Module):
    """An RNN plus the choice of output; takes the real lengths (N,) of padded sequences, or none."""

    def __init__(self, rnn: nn.Module, output: str):
        super().__init__()
        self.rnn = rnn
        self.output = output
        self.bidirectional = bool(rnn.bidirectional)
        self.num_layers = int(rnn.num_layers)
        self.hidden_size = int(rnn.hidden_size)
        self.dropout = float(rnn.dropout)
        self.has_bias = bool(rnn.bias)
        self.per_direction = 4 if rnn.bias else 2  # weight_ih, weight_hh (, bias_ih, bias_hh)

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        if lengths is None:
            out, h = self._run(x)
            return self.select(out, h)
        if self.bidirectional:
            return self._packed_bidirectional(x, lengths)
        out, _ = self._run(x)  # step t reads steps <= t: the padding after a sequence cannot reach it
        if self.output == "all":
            return self._zero_padding(out, lengths)
        return _at_steps(out, (lengths - 1).unsqueeze(1)).squeeze(1)  # the last layer's state there

    def select(self, out: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        if self.output == "all":
            return out  # (N, T, H·D)
        if self.output == "last":
            return out[:, -1]  # (N, H·D)
        if self.bidirectional:  # h: (layers·2, N, H); the last layer's two directions
            return torch.cat([h[-2], h[-1]], dim=1)
        return h[-1]

    def _zero_padding(self, out: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Zeros after each sequence's end, as pad_packed_sequence gives them."""
        steps = torch.arange(out.size(1), device=out.device).unsqueeze(0)  # (1, T)
        return out * (steps < lengths.unsqueeze(1)).unsqueeze(2).to(out.dtype)

    def _packed_bidirectional(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        steps = torch.arange(x.size(1), device=x.device).unsqueeze(0)  # (1, T)
        last = (lengths - 1).unsqueeze(1)  # (N, 1)
        # Step t of each sequence reversed within its length; padding steps stay where they are.
        reverse = torch.where(steps <= last, last - steps, steps)  # (N, T), its own inverse
        out = x
        for layer in range(self.num_layers - 1):
            out = torch.cat([self._direction(out, layer, 0),
                             _at_steps(self._direction(_at_steps(out, reverse), layer, 1), reverse)], dim=2)
            out = nn.functional.dropout(out, self.dropout, self.training)  # between layers, as torch does
        top = self.num_layers - 1
        forward = self._direction(out, top, 0)  # (N, T, H)
        backward = self._direction(_at_steps(out, reverse), top, 1)  # (N, T, H), each sequence reversed
        if self.output == "all":
            return self._zero_padding(torch.cat([forward, _at_steps(backward, reverse)], dim=2), lengths)
        at_last = _at_steps(forward, last).squeeze(1)  # (N, H)
        if self.output == "last":  # the backward direction at the last real step: its first step
            return torch.cat([at_last, backward[:, 0]], dim=1)
        return torch.cat([at_last, _at_steps(backward, last).squeeze(1)], dim=1)  # both final states

    def _weights(self, layer: int, direction: int) -> list[torch.Tensor]:
        """One layer's, one direction's weights, as nn.LSTM/nn.GRU hands them to their op."""
        start = (layer * 2 + direction) * self.per_direction
        return self.rnn._flat_weights[start : start + self.per_direction]

    def _run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _direction(self, x: torch.Tensor, layer: int, direction: int) -> torch.Tensor:
        raise NotImplementedError


class LSTMBlock(_RecurrentBlock):
    def _run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, (h, _) = self.rnn(x)
        return out, h

    def _direction(self, x: torch.Tensor, layer: int, direction: int) -> torch.Tensor:
        h0 = x.new_zeros(1, x.size(0), self.hidden_size)
        out, _, _ = _VF.lstm(x, (h0, h0), self._weights(layer, direction), self.has_bias, 1, 0.0,
                             self.training, False, True)
        return out


class GRUBlock(_RecurrentBlock):
    def _run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, h = self.rnn(x)
        return out, h

    def _direction(self, x: torch.Tensor, layer: int, direction: int) -> torch.Tensor:
        h0 = x.new_zeros(1, x.size(0), self.hidden_size)
        out, _ = _VF.gru(x, h0, self._weights(layer, direction), self.has_bias, 1, 0.0, self.training, False, True)
        return out
