"""Numerical verification: an exported model against the eager one, input batch by input batch.

A check passes when the shapes agree and every output element satisfies
|exported - eager| <= atol + rtol·|eager| (torch.allclose).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from .format import Runner
from .inputs import Case
from .report import Check


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The gist of an exception: the first line of its root cause, where exporters say what failed
    (the outer ones say which step and where to file an issue)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:limit]}" if lines else type(exc).__name__


def compare(case: Case, expected: torch.Tensor, got: torch.Tensor, atol: float, rtol: float) -> Check:
    shape = list(case.x.shape)
    if tuple(got.shape) != tuple(expected.shape):
        message = f"output shape {list(got.shape)}, expected {list(expected.shape)}"
        return Check(case.name, shape, None, False, message)
    got = got.to(expected.dtype)
    error = (got - expected).abs().max().item() if expected.numel() else 0.0
    return Check(case.name, shape, error, torch.allclose(got, expected, atol=atol, rtol=rtol))


@dataclass(frozen=True)
class Reference:
    """The eager model's outputs on the verification batches, and the tolerance to meet."""

    cases: list[Case]
    outputs: list[torch.Tensor]
    atol: float
    rtol: float

    @classmethod
    @torch.no_grad()
    def of(cls, model: nn.Module, cases: list[Case], atol: float, rtol: float) -> "Reference":
        return cls(cases, [model(case.x) for case in cases], atol, rtol)

    @torch.no_grad()
    def check(self, run: Runner) -> list[Check]:
        checks = []
        for case, expected in zip(self.cases, self.outputs):
            try:
                got = run(case.x)
            except Exception as exc:  # an exported model that cannot run this input fails this check
                checks.append(Check(case.name, list(case.x.shape), None, False, first_line(exc)))
                continue
            checks.append(compare(case, expected, got, self.atol, self.rtol))
        return checks
