"""What an export did, as data: one `FormatResult` per format, one `Check` per verified input.

`ExportReport.to_dict()` is what lands in `export_report.json`; nothing here runs a model.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..fileio import atomic_write_text

REPORT_FILE = "export_report.json"


@dataclass
class Check:
    """One comparison of an exported model against the eager model on one input batch."""

    case: str  # e.g. "batch 8, length 6"
    input_shape: list[int]
    max_abs_error: float | None  # None when the exported model failed to run or gave another shape
    passed: bool
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        error = self.max_abs_error
        return {
            "case": self.case,
            "input_shape": self.input_shape,
            "max_abs_error": error if error is None or math.isfinite(error) else str(error),
            "passed": self.passed,
            "error": self.error,
        }


@dataclass
class Attempt:
    """One way of producing a format (e.g. the dynamo ONNX exporter), and why it was not kept."""

    method: str
    failure: str | None = None  # None: this attempt's file is the one kept


@dataclass
class FormatResult:
    format: str
    file: str | None = None  # relative to the export folder; None when no attempt wrote one
    bytes: int | None = None
    method: str | None = None  # the attempt whose file is kept: "script", "trace", "dynamo", ...
    details: dict[str, Any] = field(default_factory=dict)  # e.g. {"opset": 20}
    checks: list[Check] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    export_seconds: float = 0.0
    verify_seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)  # what the exporter warned, once each

    @property
    def passed(self) -> bool:
        return self.file is not None and bool(self.checks) and all(c.passed for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "file": self.file,
            "bytes": self.bytes,
            "method": self.method,
            **self.details,
            "export_seconds": round(self.export_seconds, 3),
            "verify_seconds": round(self.verify_seconds, 3),
            "checks": [c.to_dict() for c in self.checks],
            "attempts": [{"method": a.method, "failure": a.failure} for a in self.attempts],
            "warnings": self.warnings,
        }


@dataclass
class ExportReport:
    out_dir: Path
    spec: str
    network: str
    inputs: str  # where the verification inputs came from
    atol: float
    rtol: float
    formats: list[FormatResult] = field(default_factory=list)
    preprocessing: str | None = None  # the preprocessing JSON, relative to out_dir
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return bool(self.formats) and all(f.passed for f in self.formats)

    @property
    def failures(self) -> list[str]:
        """One line per failed format: what failed, for the error message."""
        lines = []
        for result in self.formats:
            if result.passed:
                continue
            failed = [c for c in result.checks if not c.passed]
            if result.file is None:
                reason = result.attempts[-1].failure if result.attempts else "not exported"
            elif failed:
                worst = failed[0]
                reason = f"{worst.case}: " + (worst.error or f"max abs error {worst.max_abs_error:.3g}")
            else:
                reason = "no checks ran"
            lines.append(f"{result.format}: {reason}")
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "spec": self.spec,
            "network": self.network,
            "inputs": self.inputs,
            "tolerance": {"atol": self.atol, "rtol": self.rtol},
            "preprocessing": self.preprocessing,
            "seconds": round(self.seconds, 3),
            "formats": {f.format: f.to_dict() for f in self.formats},
        }

    def write(self) -> Path:
        path = self.out_dir / REPORT_FILE
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")  # no temporary left if it fails
        return path
