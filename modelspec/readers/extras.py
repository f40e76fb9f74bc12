"""Optional packages of an extra, imported where they are used."""

from __future__ import annotations

import importlib

from ..errors import SpecError


def optional_import(module: str, extra: str = "data"):
    """A package of an extra, imported where it is used; missing, one message naming the install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise SpecError(f"this data kind needs the Python package '{package}', which is not installed",
                        path=("data", "dataset"), hint=f"pip install 'modelspec[{extra}]'") from None
