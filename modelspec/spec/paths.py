"""Spec paths (`networks.cnn[5].linear.out_features`): parse, read and write them on raw data.

The same syntax serves `--set PATH=VALUE` overrides and grid keys, which both edit the raw data
before validation, so that an override is validated exactly like the file.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import Path, SpecError, format_path
from .data.tabular import TREATMENT_TYPES
from .layers import LAYER_TYPES
from .losses import LOSSES
from .metrics import METRICS
from .train import OPTIMIZERS, SCHEDULERS
from .transforms import TRANSFORM_TYPES

_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


# Here, above every registry, so that no registry module has to reach up to the others.
_REGISTERED = frozenset(
    [*LAYER_TYPES, *TRANSFORM_TYPES, *OPTIMIZERS, *LOSSES, *SCHEDULERS, *METRICS, *TREATMENT_TYPES]
)


def registered_names() -> frozenset[str]:
    """Every name that may key a one-key mapping (`conv: {...}`, `adam: {...}`, `normalize: {...}`)."""
    return _REGISTERED


def parse_path(text: str) -> Path:
    """"a.b[3].c" -> ("a", "b", 3, "c")."""
    text = text.strip()
    if text.startswith("grid.") and len(text) > 5:  # a grid key is itself a path: grid.train.optimizer.lr
        return ("grid", text[5:])
    parts: list[str | int] = []
    pos = 0
    while pos < len(text):
        if text[pos] == "." and parts:
            pos += 1
        match = _SEGMENT.match(text, pos)
        if not match:
            raise SpecError(f"'{text}' is not a spec path", hint="write it like train.optimizer.lr or model[3].p")
        parts.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        pos = match.end()
    if not parts:
        raise SpecError("an empty spec path", hint="write it like train.optimizer.lr")
    return tuple(parts)


def _layer_params(node: Any) -> dict | None:
    """The arguments of a one-key mapping (`{conv: {...}}`, `{adam: {...}}`), where written so."""
    if isinstance(node, dict) and len(node) == 1:
        ((name, params),) = node.items()
        if isinstance(params, dict) and name in registered_names():
            return params
    return None


def _child(node: Any, part: str | int) -> Any:
    """Step into raw data, looking through one-key mappings (`{conv: {...}}`) too."""
    if isinstance(part, int):
        if isinstance(node, list) and -len(node) <= part < len(node):
            return node[part]
        raise KeyError(part)
    if not isinstance(node, dict):
        raise KeyError(part)
    if part in node:
        return node[part]
    params = _layer_params(node)
    if params is not None:
        return _child(params, part)
    raise KeyError(part)


def get_path(data: Any, path: Path) -> Any:
    node = data
    for part in path:
        node = _child(node, part)
    return node


def _copied(node: Any) -> Any:
    return dict(node) if isinstance(node, dict) else list(node) if isinstance(node, list) else node


def _writable_child(node: Any, part: str | int) -> Any:
    """Step into `node` (a copy already) for writing: the child is copied and put back in its place."""
    if isinstance(part, int):
        if not isinstance(node, list) or not -len(node) <= part < len(node):
            raise KeyError(part)
        node[part] = _copied(node[part])
        return node[part]
    if not isinstance(node, dict):
        raise KeyError(part)
    if part not in node:
        params = _layer_params(node)
        if params is not None:  # `{conv: {...}}`: step into the arguments
            ((name, _),) = node.items()
            node[name] = dict(params)
            return _writable_child(node[name], part)
        node[part] = {}
    node[part] = _copied(node[part])
    return node[part]


def set_path(data: Any, path: Path, value: Any) -> Any:
    """A copy of `data` with `path` set to `value` (missing mappings are created).

    Only the mappings and lists along the path are copied; the rest is shared with `data`, which
    stays as it was. (A grid expands to a copy per run, so a deep copy each time adds up.)
    """
    data = _copied(data) if data is not None else {}
    try:
        node = data
        for part in path[:-1]:
            node = _writable_child(node, part)
        last = path[-1]
        if isinstance(last, int):
            if not isinstance(node, list) or not -len(node) <= last < len(node):
                raise KeyError(last)
        elif not isinstance(node, dict):
            raise KeyError(last)
        elif last not in node and _layer_params(node) is not None:
            ((name, params),) = node.items()
            node[name] = dict(params)
            node = node[name]
        node[last] = value
    except KeyError:
        raise SpecError(
            f"cannot set {format_path(path)}: the spec has nothing there to hold it",
            path=path,
            hint="check the path against the spec; list items are written [index]",
        ) from None
    return data


def unset_path(data: Any, path: Path) -> Any:
    """A copy of `data` without the key (or list item) at `path`, so that its default applies again;
    a path that holds nothing is an error with the keys that are there (a typo is never a no-op)."""
    try:
        get_path(data, path)
    except KeyError:
        raise SpecError("nothing to unset: the spec has no such key", path=path,
                        hint=_keys_hint(data, path)) from None
    data = _copied(data)
    node = data
    for part in path[:-1]:
        node = _writable_child(node, part)  # every step exists: nothing is created
    last = path[-1]
    if isinstance(node, dict) and last not in node:  # `{conv: {...}}`: the key is an argument
        ((name, params),) = node.items()
        node[name] = node = dict(params)
    del node[last]
    return data


def _keys_hint(data: Any, path: Path) -> str:
    """Close matches among the keys at the deepest step of `path` the data has."""
    from ..errors import did_you_mean

    node, depth = data, 0
    for depth, part in enumerate(path):
        try:
            node = _child(node, part)
        except KeyError:
            break
    if isinstance(node, list):
        return f"{format_path(path[:depth]) if depth else 'the spec'} is a list of {len(node)} item(s), [0] to [{len(node) - 1}]"
    if not isinstance(node, dict):
        return f"{format_path(path[:depth])} holds a value, not keys"
    params = _layer_params(node)
    keys = list(params if params is not None else node)
    return did_you_mean(path[depth], keys) or "keys there: " + ", ".join(map(str, keys[:20]))
