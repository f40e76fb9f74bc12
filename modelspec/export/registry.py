"""The export formats by name, found in the modules of `export/formats/`, and the check of a requested
list of names."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable

from ..errors import SpecError, did_you_mean
from . import formats
from .format import Format


def discover_formats() -> dict[str, Format]:
    """Every module-level `Format` of the `formats` package, by name, in module order."""
    found: dict[str, Format] = {}
    for info in pkgutil.iter_modules(formats.__path__):
        module = importlib.import_module(f"{formats.__name__}.{info.name}")
        for value in vars(module).values():
            if isinstance(value, Format) and found.setdefault(value.name, value) is not value:
                raise TypeError(f"two export formats are named '{value.name}' (one in {module.__name__})")
    return found


FORMATS: dict[str, Format] = discover_formats()


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
