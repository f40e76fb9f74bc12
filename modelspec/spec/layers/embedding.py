"""embedding: integer tokens (T,) -> vectors (T, embedding_dim). Only as a network's first layer."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from .._torch import nn
from ..base import NonNegativeInt, PositiveInt
from .base import LayerSpec, Shape


class Embedding(LayerSpec):
    type: Literal["embedding"] = "embedding"
    num_embeddings: PositiveInt  # the vocabulary size
    embedding_dim: PositiveInt
    padding_idx: NonNegativeInt | None = None

    @model_validator(mode="after")
    def _padding_in_vocabulary(self):
        if self.padding_idx is not None and self.padding_idx >= self.num_embeddings:
            raise ValueError(
                f"padding_idx={self.padding_idx} is outside the vocabulary of {self.num_embeddings}"
            )
        return self

    @property
    def label(self) -> str:
        return f"embedding {self.num_embeddings}→{self.embedding_dim}"

    def output_shape(self, input_shape: Shape) -> Shape:
        return (*input_shape, self.embedding_dim)

    def build(self, input_shape: Shape) -> nn.Module:
        return nn.Embedding(self.num_embeddings, self.embedding_dim, padding_idx=self.padding_idx)
