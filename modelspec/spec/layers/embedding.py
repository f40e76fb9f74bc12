"""embedding: integer tokens (T,) -> vectors (T, embedding_dim). Only as a network's first layer."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from .._torch import nn
from ..base import NonNegativeInt, PositiveInt
from .base import ExportExample, LayerSpec, Shape


class Embedding(LayerSpec):
    """Token embedding, `nn.Embedding`: integer tokens (T,) become vectors (T, embedding_dim); only as a
    network's first layer."""

    type: Literal["embedding"] = "embedding"
    num_embeddings: PositiveInt
    """The vocabulary size: tokens are integers from 0 to num_embeddings - 1."""
    embedding_dim: PositiveInt
    """The length of each token's learned vector."""
    padding_idx: NonNegativeInt | None = None
    """A token id (usually 0) whose vector stays zero and gets no gradient, for padding; none by default."""

    examples = (({"num_embeddings": 10, "embedding_dim": 4, "padding_idx": 0}, (6,)),)
    export_example = ExportExample(
        (9,), ({"embedding": {"num_embeddings": 20, "embedding_dim": 4, "padding_idx": 0}}, "flatten"), vocab_size=20
    )

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
