"""The torch modules of layer kinds that torch has no module for, built by their specs' `build`.

Kept apart from the specs, which import torch only when they build (see spec/_torch.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ScaleModule(nn.Module):
    def __init__(self, multiply: float, add: float):
        super().__init__()
        self.multiply, self.add = multiply, add

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.multiply + self.add


class Sum(nn.Module):
    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class Product(nn.Module):
    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out


class Concat(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(xs, dim=self.dim)


class GlobalPoolModule(nn.Module):
    """Average or max over every position: (N, C, ...) -> (N, C), or (N, C, 1, ...) with keepdim."""

    def __init__(self, kind: str, dims: list[int], keepdim: bool):
        super().__init__()
        self.kind, self.dims, self.keepdim = kind, dims, keepdim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "max":
            return x.amax(dim=self.dims, keepdim=self.keepdim)
        return x.mean(dim=self.dims, keepdim=self.keepdim)


class PadModule(nn.Module):
    def __init__(self, padding: list[int], mode: str, value: float):
        super().__init__()
        self.padding, self.mode, self.value = padding, mode, value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "constant":
            return F.pad(x, self.padding, "constant", self.value)
        return F.pad(x, self.padding, self.mode)


class Permute(nn.Module):
    def __init__(self, dims: list[int]):
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(self.dims)


class Transpose(nn.Module):
    def __init__(self, dim0: int, dim1: int):
        super().__init__()
        self.dim0, self.dim1 = dim0, dim1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(self.dim0, self.dim1)


class Reshape(nn.Module):
    """Each sample to `shape`; the batch dim stays whatever it is (so exports keep it dynamic)."""

    def __init__(self, shape: list[int]):
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).unflatten(1, self.shape)


class Unsqueeze(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(self.dim)


class Squeeze(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.squeeze(self.dim)


class Select(nn.Module):
    def __init__(self, dim: int, index: int):
        super().__init__()
        self.dim, self.index = dim, index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.select(self.dim, self.index)
