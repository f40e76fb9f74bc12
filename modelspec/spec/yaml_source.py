"""Load YAML safely and remember where every value came from.

Specs are data: this builds on `yaml.SafeLoader` (no tags that construct Python objects), and walks the
composed node graph once before constructing anything, so that alias bombs ("billion laughs"), absurd
nesting and duplicate keys are refused with a location instead of eating the machine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..errors import Path, SpecError, SpecIssue

# A spec is a page or two (fashion_bn.yaml is 1.3 KB). PyYAML's pure-Python parser reads dense YAML
# at about 50 KB a second, so this also bounds the time a hostile file takes to about a second
# (libyaml's faster parser is no way out: it crashes the process on deep nesting).
MAX_SPEC_BYTES = 64_000
MAX_NODES = 50_000  # nodes after alias expansion; fashion_bn.yaml has about 200
MAX_DEPTH = 40  # mappings and lists nested deeper than any spec needs
MAX_INT_DIGITS = 30  # past int64 anyway; Python refuses to even read ints of 4,300+ digits
_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"


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

    def override_of(self, path: Path) -> str | None:
        """The `--set` that put the value at `path` there: one that set it or a value around it, or
        one that created it (`--set a.foo.bar=1` makes the unknown key `a.foo`, which the file lacks)."""
        for set_path, origin in self.overrides.items():
            for candidate in (tuple(path), _without_layer_tag(path)):
                if candidate[: len(set_path)] == set_path:
                    return origin
                if set_path[: len(candidate)] == candidate and candidate not in self.positions:
                    return origin
        return None

    def issue(self, issue: SpecIssue) -> SpecIssue:
        origin = self.override_of(issue.path)
        if origin is not None:  # the value came from the command line
            return issue.located(origin, None, None)
        line, column = self.locate(issue.path)
        return issue.located(self.file, line, column)


def _without_layer_tag(path: Path) -> Path:
    """Drop a string segment that follows a list index: networks.x[3].conv.k -> networks.x[3].k."""
    for i in range(1, len(path)):
        if isinstance(path[i - 1], int) and isinstance(path[i], str):
            return path[:i] + path[i + 1 :]
    return path


class _TooDeep(Exception):
    def __init__(self, mark: yaml.Mark):
        self.mark = mark


class _Loader(yaml.SafeLoader):
    """SafeLoader with a depth limit while composing: a name of our own, so that nothing registered
    globally leaks in. The limit stops `[[[[...` before Python's recursion limit does."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent, index):
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH + 1:
                raise _TooDeep(self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


# YAML 1.1 reads `1e-3` (no dot) as a string; specs mean the number, as YAML 1.2 and JSON do.
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _walk(node: yaml.Node, path: Path, source: SourceMap, budget: list[int]) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        raise SpecError(
            f"the YAML expands to more than {MAX_NODES} values",
            path=path[:1],  # the section that expands; the node deep down says little
            hint="aliases (*name) that repeat anchors many times over look like a YAML bomb",
        )
    if len(path) > MAX_DEPTH:  # an alias inside its own anchor (`a: &a [*a]`) gets here
        hint = "an alias (*name) inside its own anchor repeats forever"
        issue = SpecIssue(f"values are nested more than {MAX_DEPTH} levels deep", path[:1], hint)
        raise _located(issue, source.file, node)
    source.positions.setdefault(path, _mark(node))
    if isinstance(node, yaml.ScalarNode) and node.tag == _INT and len(node.value) > MAX_INT_DIGITS:
        raise SpecError(
            f"a number of {len(node.value)} digits; numbers in a spec fit in 64 bits", path=path
        )
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, tuple[int, int]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: its entries land here
                _walk(value_node, path, source, budget)
                continue
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR:
                # `1:`, `yes:` or `null:` would reach validation as an int, a bool or None
                text = key_node.value if isinstance(key_node, yaml.ScalarNode) else "a list or mapping"
                issue = SpecIssue(f"a key must be a name; received {text[:40]}", path, "quote the key")
                raise _located(issue, source.file, key_node)
            key = key_node.value
            if key in seen:
                line, col = seen[key]
                issue = SpecIssue(
                    f"key '{key}' appears twice (first at line {line}, col {col})",
                    path + (key,),
                    "YAML keeps only the last one; remove the duplicate",
                )
                raise _located(issue, source.file, key_node)
            seen[key] = _mark(key_node)
            _walk(value_node, path + (key,), source, budget)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, path + (index,), source, budget)


def _located(issue: SpecIssue, file: str, node: yaml.Node) -> SpecError:
    """An issue placed at `node` itself (the path's first occurrence may be elsewhere)."""
    return SpecError([issue.located(file, *_mark(node))])


def _yaml_issue(exc: yaml.YAMLError, file: str, text: str) -> SpecIssue:
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow; it has no mark
        before = text[: exc.position]
        line, column = before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1
        return SpecIssue(f"not valid YAML: {exc.reason}: #x{exc.character:04x}", (), "", file, line, column)
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
    loader = None
    try:
        loader = _Loader(text)  # reads the whole text, refusing control characters
        node = loader.get_single_node()
        if node is None:
            return None, source
        _walk(node, (), source, [MAX_NODES])
        data = loader.construct_document(node)
    except SpecError as exc:
        raise SpecError([i if i.line else source.issue(i) for i in exc.issues]) from None
    except _TooDeep as exc:
        issue = SpecIssue(f"values are nested more than {MAX_DEPTH} levels deep", hint="no spec needs that")
        raise SpecError([issue.located(file, exc.mark.line + 1, exc.mark.column + 1)]) from None
    except yaml.YAMLError as exc:
        raise SpecError([_yaml_issue(exc, file, text)]) from None
    except RecursionError:
        raise SpecError([SpecIssue("values are nested too deeply to read", file=file)]) from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, source
