"""Export a trained model to TorchScript, ONNX and torch.export files, each verified numerically.

`export_trained(trained, out_dir, formats, inputs)` writes the files, `preprocessing.json` and
`export_report.json`; `check_formats(names)` fails early on an unknown format or a missing extra.
onnx and onnxruntime are imported only when an ONNX file is made or checked.
"""

from .pipeline import export_trained
from .registry import FORMATS, check_formats
from .report import REPORT_FILE, Check, ExportReport, FormatResult

__all__ = ["FORMATS", "REPORT_FILE", "Check", "ExportReport", "FormatResult", "check_formats", "export_trained"]
