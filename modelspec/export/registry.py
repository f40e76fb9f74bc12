"""The export formats by name, and the check of a requested list of names."""

from __future__ import annotations

from typing import Iterable

from ..errors import SpecError, did_you_mean
from .format import Format
from .onnx_export import ONNX
from .torch_export import TORCH_EXPORT
from .torchscript import TORCHSCRIPT

FORMATS: dict[str, Format] = {f.name: f for f in (TORCHSCRIPT, ONNX, TORCH_EXPORT)}


def check_formats(names: Iterable[str]) -> list[str]:
    """Known names, each once, in the order given; and every package they need is installed.

    Call it before a long job that exports at its end, so that a typo or a missing extra fails first.
    """
    names = list(dict.fromkeys(names))
    if not names:
        raise SpecError("no export format given", hint="formats: " + ", ".join(FORMATS))
    for name in names:
        if name not in FORMATS:
            suggestion = did_you_mean(name, FORMATS)
            raise SpecError(
                f"unknown export format '{name}'",
                hint=(suggestion + " " if suggestion else "") + "formats: " + ", ".join(FORMATS),
            )
    for name in names:
        FORMATS[name].require()
    return names
