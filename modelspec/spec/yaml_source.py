"""Load YAML safely and remember where every value came from.

Specs are data: this builds on `yaml.SafeLoader` (no tags that construct Python objects), and walks the
composed node graph once before constructing anything, so that alias bombs ("billion laughs"), absurd
nesting and duplicate keys are refused with a location instead of eating the machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from ..errors import Path, SpecError, SpecIssue

MAX_SPEC_BYTES = 1_000_000  # a spec is a page or two; a megabyte is a mistake or an attack
MAX_NODES = 50_000  # nodes after alias expansion; fashion_bn.yaml has about 200
MAX_DEPTH = 40  # mappings and lists nested deeper than any spec needs


@dataclass
class SourceMap:
    """Spec path -> (line, column), both 1-based, for every node of one YAML document."""

    file: str
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    overrides: dict[Path, str] = field(default_factory=dict)  # path -> "--set PATH=VALUE"

    def locate(self, path: Path) -> tuple[int | None, int | None]:
        """The position of `path`, or of its nearest ancestor the file has.

        Validation paths can differ from the file's: a layer written `conv: {...}` is validated as
        `{type: conv, ...}`, so `[7].conv.out_features` may stand in the file as `[7].out_features`.
        """
        path = tuple(path)
        while True:
            for candidate in (path, _without_layer_tag(path)):
                if candidate in self.positions:
                    return self.positions[candidate]
            if not path:
                return None, None
            path = path[:-1]

    def issue(self, issue: SpecIssue) -> SpecIssue:
        for path, origin in self.overrides.items():
            if tuple(issue.path[: len(path)]) == path:  # the value came from the command line
                return issue.located(origin, None, None)
        line, column = self.locate(issue.path)
        return issue.located(self.file, line, column)


def _without_layer_tag(path: Path) -> Path:
    """Drop a string segment that follows a list index: networks.x[3].conv.k -> networks.x[3].k."""
    for i in range(1, len(path)):
        if isinstance(path[i - 1], int) and isinstance(path[i], str):
            return path[:i] + path[i + 1 :]
    return path


class _Loader(yaml.SafeLoader):
    """SafeLoader, unchanged: a name of our own so that nothing registered globally leaks in."""


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _walk(node: yaml.Node, path: Path, source: SourceMap, budget: list[int]) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        raise SpecError(
            f"the YAML expands to more than {MAX_NODES} values",
            path=path,
            hint="aliases (*name) that repeat anchors many times over look like a YAML bomb",
        )
    if len(path) > MAX_DEPTH:
        raise SpecError(f"values are nested more than {MAX_DEPTH} levels deep", path=path)
    source.positions.setdefault(path, _mark(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, tuple[int, int]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise SpecError("a mapping key must be a plain name", path=path, hint="quote the key")
            key = key_node.value
            if key == "<<":  # a merge key: its entries land in this mapping
                _walk(value_node, path, source, budget)
                continue
            if key in seen:
                line, col = seen[key]
                raise SpecError(
                    f"key '{key}' appears twice (first at line {line}, col {col})",
                    path=path + (key,),
                    hint="YAML keeps only the last one; remove the duplicate",
                )
            seen[key] = _mark(key_node)
            _walk(value_node, path + (key,), source, budget)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, path + (index,), source, budget)


def _yaml_issue(exc: yaml.YAMLError, file: str) -> SpecIssue:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = f"{context}, {problem}" if context else str(problem)
    hint = "check indentation and that every ':' is followed by a space"
    if "could not determine a constructor" in message or "tag" in message:
        hint = "specs are data: tags such as !!python/object are not allowed"
    return SpecIssue(
        f"not valid YAML: {message}",
        hint=hint,
        file=file,
        line=mark.line + 1 if mark else None,
        column=mark.column + 1 if mark else None,
    )


def load_yaml(text: str, file: str = "<spec>") -> tuple[Any, SourceMap]:
    """Parse one YAML document into plain dicts/lists/scalars plus a `SourceMap`."""
    source = SourceMap(file)
    if len(text.encode("utf-8", "replace")) > MAX_SPEC_BYTES:
        raise SpecError([SpecIssue(f"the spec is larger than {MAX_SPEC_BYTES} bytes", file=file)])
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, source
        _walk(node, (), source, [MAX_NODES])
        data = loader.construct_document(node)
    except SpecError as exc:
        raise SpecError([source.issue(issue) for issue in exc.issues]) from None
    except yaml.YAMLError as exc:
        raise SpecError([_yaml_issue(exc, file)]) from None
    except RecursionError:
        raise SpecError([SpecIssue("values are nested too deeply to read", file=file)]) from None
    finally:
        loader.dispose()
    return data, source
