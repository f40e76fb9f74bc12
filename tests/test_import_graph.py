"""The package's import graph follows its layers and has no cycle, counting imports inside functions.

Imports placed inside functions hide cycles from Python (the module is loaded by the time the function
runs) but not from a reader: a kind that reaches up into the runtime is still coupled to it. So this
test reads every module with `ast`, keeps every project import wherever it sits (except under
`if TYPE_CHECKING:`, which never runs), and checks the graph against the layer table below.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import modelspec

PACKAGE_DIR = Path(modelspec.__file__).parent

# Layer of each module, by the longest matching dotted prefix. A module may import only modules of
# its own layer or a lower one.
LAYERS = {
    "modelspec.errors": 0,
    "modelspec.fileio": 0,
    "modelspec.spec.base": 0,
    "modelspec.readers": 1,
    "modelspec.tracking": 1,
    "modelspec.spec": 2,
    "modelspec.compile": 3,
    "modelspec.data": 3,
    "modelspec.artifacts": 3,
    "modelspec.load": 3,
    "modelspec.runner": 4,
    "modelspec.export": 5,
    "modelspec.predict": 6,
    "modelspec.report": 6,  # reads grid folders (tracking, spec paths) for `modelspec report`
    "modelspec.serve": 7,  # the FastAPI app of `modelspec serve`: reads predict
    "modelspec.cli": 7,
    "modelspec.__main__": 7,
    "modelspec": 7,  # modelspec/__init__.py, the Python API
}

# What the spec package (the kinds) must never import, whatever the layer numbers say.
SPEC_FORBIDDEN = (
    "modelspec.runner",
    "modelspec.compile",
    "modelspec.data",
    "modelspec.export",
    "modelspec.predict",
    "modelspec.cli",
    "modelspec.artifacts",
    "modelspec.load",
)


def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name, from __init__.py)."""
    modules = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def layer_of(module: str) -> int:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[best]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST):
    """Every Import/ImportFrom node at any depth, skipping the bodies of `if TYPE_CHECKING:`."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _source_of(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = name.split(".") if is_package else name.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _scanned_package(node: ast.AST, name: str, aliases: dict[str, str]) -> str | None:
    """The package a registry scans with `pkgutil.iter_modules(__path__)` (its own) or
    `iter_modules(formats.__path__)` (an imported one), importing each of its modules by name."""
    if not (isinstance(node, ast.Call) and node.args and getattr(node.func, "attr", getattr(node.func, "id", ""))
            == "iter_modules"):
        return None
    arg = node.args[0]
    if isinstance(arg, ast.Name) and arg.id == "__path__":
        return name
    if isinstance(arg, ast.Attribute) and arg.attr == "__path__" and isinstance(arg.value, ast.Name):
        return aliases.get(arg.value.id)
    return None


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `name` imports. `from pkg import sub` counts as `pkg.sub` when sub is a module,
    and a registry that scans a package (pkgutil) imports each of the package's modules."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), str(path))
    found, aliases = set(), {}
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            source = _source_of(node, name, is_package)
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source
                       for alias in node.names]
            aliases.update({alias.asname or alias.name: target for alias, target in zip(node.names, targets)})
        for target in targets:
            # `import modelspec.spec.layers.conv` imports the nearest known module of that name.
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    for node in ast.walk(tree):
        package = _scanned_package(node, name, aliases)
        if package is not None:
            found |= {m for m in known if m.rpartition(".")[0] == package and m != name}
    return found


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    known = set(files)
    return {name: imports_of(name, path, known) for name, path in files.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles as closed chains: a shortest one per tangle (strongly connected component), whose
    closing edge is then set aside so that the next pass shows the tangle's other cycles."""
    graph = {node: set(targets) for node, targets in graph.items()}
    chains = []
    while components := _components(graph):
        for component in components:
            chain = _chain(graph, component)
            chains.append(chain)
            graph[chain[-2]].discard(chain[-1])
    return chains


def _components(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, on_stack, stack, components = {}, {}, set(), [], []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _chain(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest cycle through the component's first module, to show a reader where it closes."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt_frontier = []
        for node in frontier:
            for nxt in sorted(graph[node] & component):
                if nxt == start:
                    return paths[node] + [start]
                if nxt not in paths:
                    paths[nxt] = paths[node] + [nxt]
                    nxt_frontier.append(nxt)
        frontier = nxt_frontier
    raise AssertionError(f"no cycle through {start}")  # a component of >1 node always has one


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    return [
        f"{src} -> {dst} (layer {layer_of(src)} -> layer {layer_of(dst)})"
        for src in sorted(graph)
        for dst in sorted(graph[src])
        if layer_of(dst) > layer_of(src)
    ]


def spec_violations(graph: dict[str, set[str]]) -> list[str]:
    return [
        f"{src} -> {dst}"
        for src in sorted(graph)
        if src == "modelspec.spec" or src.startswith("modelspec.spec.")
        for dst in sorted(graph[src])
        if any(dst == bad or dst.startswith(bad + ".") for bad in SPEC_FORBIDDEN)
    ]


def test_the_graph_sees_imports_inside_functions_and_relative_forms(tmp_path, monkeypatch):
    pkg = tmp_path / "modelspec"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "low.py").write_text("def f():\n    from .sub import deep\n")
    (pkg / "sub" / "__init__.py").write_text("import pkgutil\nfrom .. import low\npkgutil.iter_modules(__path__)\n")
    (pkg / "sub" / "deep.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..low import f\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE_DIR", pkg)
    graph = import_graph()
    assert graph == {
        "modelspec": set(),
        "modelspec.low": {"modelspec.sub.deep"},
        "modelspec.sub": {"modelspec.low", "modelspec.sub.deep"},  # its registry scans the package
        "modelspec.sub.deep": set(),
    }
    graph["modelspec.sub.deep"].add("modelspec.sub")  # two cycles now, each reported as a chain
    assert find_cycles(graph) == [
        ["modelspec.low", "modelspec.sub.deep", "modelspec.sub", "modelspec.low"],
        ["modelspec.sub", "modelspec.sub.deep", "modelspec.sub"],
    ]


def test_the_package_import_graph_has_no_cycle():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles (counting imports inside functions):\n" + "\n".join(
        " -> ".join(chain) for chain in cycles
    )


def test_every_import_goes_to_the_same_or_a_lower_layer():
    violations = layer_violations(import_graph())
    assert not violations, "imports that reach up a layer:\n" + "\n".join(violations)


def test_the_spec_package_imports_no_runtime_module():
    violations = spec_violations(import_graph())
    assert not violations, "spec modules importing runtime modules:\n" + "\n".join(violations)



def test_an_edge_up_a_layer_and_a_spec_module_reaching_the_runtime_are_reported():
    graph = {"modelspec.spec.data.images": {"modelspec.data.images", "modelspec.errors"},
             "modelspec.tracking.base": {"modelspec.spec.export"}, "modelspec.data.images": set(),
             "modelspec.errors": set(), "modelspec.spec.export": set()}
    assert layer_violations(graph) == [
        "modelspec.spec.data.images -> modelspec.data.images (layer 2 -> layer 3)",
        "modelspec.tracking.base -> modelspec.spec.export (layer 1 -> layer 2)",
    ]
    assert spec_violations(graph) == ["modelspec.spec.data.images -> modelspec.data.images"]


# --------------------------------------------------------------------------------------------------
# Registries are discovered: adding a layer kind or an export format is one module.


def _write_module(folder: Path, name: str, text: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.py").write_text(text)


def test_every_layer_kind_defined_in_the_layers_package_is_registered():
    from modelspec.spec.layers import LAYER_KINDS, BlockUse, LayerSpec

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    def in_package(cls) -> bool:  # not a throwaway module another test wrote
        module = sys.modules.get(cls.__module__)
        return module is not None and Path(module.__file__).is_relative_to(PACKAGE_DIR)

    defined = {cls for cls in subclasses(LayerSpec) if cls.__module__.startswith("modelspec.spec.layers.")
               and in_package(cls) and not cls.__name__.startswith("_") and cls is not BlockUse}
    assert defined == set(LAYER_KINDS)
    names = [cls.model_fields["type"].default for cls in LAYER_KINDS]
    assert len(names) == len(set(names)) and {"conv", "linear", "relu", "torchvision"} <= set(names)


def test_a_new_module_in_the_layers_package_is_a_new_layer_kind(tmp_path, monkeypatch):
    import modelspec.spec.layers as layers

    _write_module(tmp_path, "zz_wave", (
        "from typing import Literal\n"
        "from modelspec.spec.layers.base import LayerSpec\n"
        "class Wave(LayerSpec):\n"
        "    type: Literal['wave'] = 'wave'\n"
        "class _Helper(LayerSpec):\n"  # no literal tag: a base class, no kind
        "    pass\n"
    ))
    monkeypatch.setattr(layers, "__path__", [*layers.__path__, str(tmp_path)])
    try:
        kinds = layers.discover_kinds()
    finally:
        sys.modules.pop("modelspec.spec.layers.zz_wave", None)
    assert [cls.__name__ for cls in kinds[-1:]] == ["Wave"]
    assert kinds[:-1] == layers.LAYER_KINDS


def test_a_new_module_in_the_formats_package_is_a_new_export_format(tmp_path, monkeypatch):
    from modelspec.export import registry

    _write_module(tmp_path, "zz_text", (
        "from modelspec.export.format import Format\n"
        "TEXT = Format('text', 'model.txt', (), lambda path: None)\n"
    ))
    monkeypatch.setattr(registry.formats, "__path__", [*registry.formats.__path__, str(tmp_path)])
    try:
        found = registry.discover_formats()
    finally:
        sys.modules.pop("modelspec.export.formats.zz_text", None)
    assert list(found) == [*registry.FORMATS, "text"]
    assert found["text"].file == "model.txt"
    assert set(registry.FORMATS) == {"onnx", "torch_export", "torchscript"}


# --------------------------------------------------------------------------------------------------
# The keys a resume may change are read off the fields (`ResumeSafe`), not kept in a list.


def test_the_resume_safe_keys_are_the_marked_fields():
    from modelspec.runner.checkpoint import DATA_LOCATIONS, RESUME_SAFE_KEYS

    assert set(RESUME_SAFE_KEYS) == {
        ("data", "root"), ("data", "path"), ("data", "test_path"), ("data", "tokenizer"), ("data", "download"),
        ("data", "num_workers"), ("data", "pin_memory"), ("train", "checkpoint_every"),
        ("tracking", "histograms"), ("tracking", "images"), ("tracking", "graph"),
        ("tracking", "backends"), ("tracking", "mlflow", "uri"), ("tracking", "mlflow", "experiment"),
    }
    assert set(DATA_LOCATIONS) == {"root", "path", "test_path", "tokenizer"}


def test_a_marked_field_is_found_through_optional_and_union_members():
    from typing import Annotated, Literal, Optional, Union

    from modelspec.spec.base import DATA_LOCATION, RESUME_SAFE, SpecModel, resume_safe_fields

    class A(SpecModel):
        kind: Literal["a"] = "a"
        where: Annotated[str, DATA_LOCATION] = "x"

    class B(SpecModel):
        kind: Literal["b"] = "b"
        where: Annotated[Optional[str], DATA_LOCATION] = None
        workers: Annotated[int, RESUME_SAFE] = 0
        size: int = 1

    class Root(SpecModel):
        data: Union[A, B]
        items: list[B] = []  # a list's items have no fixed path

    found = resume_safe_fields(Root)
    assert list(found) == [("data", "where"), ("data", "workers")]
    assert found[("data", "where")].location and not found[("data", "workers")].location
