"""torch, imported where it is first used, not when the spec package is.

The spec classes are what `modelspec schema` turns into a JSON Schema and what every command
validates; only building a module, a loss or an optimizer needs torch, and importing torch costs
seconds. The spec modules take `torch`, `nn`, `F` and `optim` from here: each is the
real module from its first attribute read on (`nn.Linear(...)` inside a `build`). Nothing at a spec
module's top level may read one; torch modules of their own live in `layers/_modules.py`.
"""

from __future__ import annotations

import importlib
from typing import Any


class _Deferred:
    """A module that is imported at its first attribute read."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):  # what Python asks any object (abc, pydantic, copy): not torch's
            raise AttributeError(attribute)
        return getattr(importlib.import_module(self._name), attribute)

    def __repr__(self) -> str:
        return f"<{self._name}, imported when first used>"


torch: Any = _Deferred("torch")
nn: Any = _Deferred("torch.nn")
F: Any = _Deferred("torch.nn.functional")
optim: Any = _Deferred("torch.optim")
modules: Any = _Deferred("modelspec.spec.layers._modules")  # the layer kinds' own torch modules
