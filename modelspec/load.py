"""Load a spec file: YAML (with positions) -> overrides -> validation -> grid and shape checks.

This is the front of the pipeline every command goes through; it ends in a `LoadedSpec` or a
`SpecError` that lists every located problem at once.
"""

from __future__ import annotations

import json
import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any, Sequence

from .compile.finetune import check_freeze
from .compile.shapes import MAX_SAMPLE_ELEMENTS, NetworkShapes, check_padding, infer_shapes
from .compile.task import resolve_task, targets_of
from .errors import SpecError, SpecIssue
from .spec.data import LOADER_KEYS, static_shape
from .spec.grid import RunPlan, check_grid, check_search, expand_grid, grid_location
from .spec.layers import Embedding, fmt_shape
from .spec.paths import parse_path, set_path, unset_path
from .spec.root import Spec
from .spec.validate import relocate, validate_data
from .spec.yaml_source import MAX_SPEC_BYTES, SourceMap, load_yaml


STAND_IN_CLASSES = 2
# Layers the grid's extra shape checks may build (each ~0.2 ms on the meta device).
MAX_GRID_LAYER_CHECKS = 2_000


@dataclass
class LoadedSpec:
    spec: Spec
    raw: dict[str, Any]  # the data as written, overrides applied (grid expansion edits this)
    source: SourceMap
    notes: list[str] = field(default_factory=list)  # what validate could not check without data

    @property
    def file(self) -> str:
        return self.source.file

    def runs(self) -> list[RunPlan]:
        try:
            return expand_grid(self.spec, self.raw)
        except SpecError as exc:
            raise relocate(exc, self.source) from None


def apply_overrides(raw: Any, overrides: Sequence[str], source: SourceMap, unset: Sequence[str] = ()) -> Any:
    """`--unset PATH` removes each key (first, so that `--unset a --set a.b=1` starts `a` afresh), then
    each `--set PATH=VALUE` (VALUE read as YAML, safely) is set into the raw data. Either is located at
    its own command-line text when it is wrong or what it leaves is."""
    if raw is not None and not isinstance(raw, dict):
        return raw  # validation says the spec is no mapping; an override cannot help
    for item in unset:
        origin = f"--unset {item}"
        try:
            path = parse_path(item)
            raw = unset_path(raw, path)
        except SpecError as exc:
            raise SpecError([i.located(origin, None, None) for i in exc.issues]) from None
        source.overrides[path] = origin
    for item in overrides:
        origin = f"--set {item}"
        path_text, sep, value_text = item.partition("=")
        if not sep:
            raise SpecError([SpecIssue("expected PATH=VALUE", hint="e.g. --set train.epochs=2; "
                                       "to remove a key: --unset PATH", file=origin)])
        try:
            path = parse_path(path_text)
            value, _ = load_yaml(value_text, origin)
            raw = set_path(raw, path, value)
        except SpecError as exc:
            raise SpecError([i.located(origin, None, None) for i in exc.issues]) from None
        source.overrides[path] = origin
    return raw


def _data_shape(spec: Spec, check_data: bool, checked: dict[str, Any] | None) -> tuple[Any, int | None]:
    """(input_shape, num_classes): static, or with what cheap reads of the data's files add. `checked`
    keeps each data section's outcome, so that the runs of a grid read the same files once, and a
    problem with them is said once (raised again with no issue)."""
    if not check_data:
        return static_shape(spec.data)
    if checked is None:
        return spec.data.check_files(spec.seed)
    key = json.dumps(spec.data.identity()) + f" seed={spec.seed}"
    if key not in checked:
        try:
            checked[key] = spec.data.check_files(spec.seed)
        except SpecError as exc:
            checked[key] = exc
            raise
    if isinstance(checked[key], SpecError):
        raise SpecError([])  # said already
    return checked[key]


def check_shapes(spec: Spec, source: SourceMap, check_data: bool = False,
                 checked: dict[str, Any] | None = None) -> tuple[dict[str, NetworkShapes], list[str]]:
    """Shape-check every network against the data's static shape (`check_data`: and what cheap reads
    of its files add: they exist, name the spec's columns, a table's width, the class folders);
    notes say what could not be checked."""
    try:
        input_shape, num_classes = _data_shape(spec, check_data, checked)
    except SpecError as exc:
        raise relocate(exc, source) from None
    if input_shape is None:
        return {}, [spec.data.unknown_shape_note]
    if math.prod(input_shape) > MAX_SAMPLE_ELEMENTS:
        issue = SpecIssue(
            f"samples of shape {fmt_shape(input_shape)} have {math.prod(input_shape):,} elements; "
            f"modelspec refuses more than {MAX_SAMPLE_ELEMENTS:,}",
            ("data", "input_shape") if spec.data.input_shape is not None else ("data",),
            "check input_shape (or the resize and crop sizes) for an extra zero",
        )
        raise SpecError([source.issue(issue)])
    tokens = spec.data.tokens
    shapes, issues = {}, []
    for name, layers in spec.all_networks.items():
        path = spec.network_path(name)
        try:
            # An unknown class count (an image folder) is checked with a stand-in, so the layers
            # around a `num_classes` linear are still checked; the runner resolves the real one.
            classes = num_classes if num_classes is not None else STAND_IN_CLASSES
            shapes[name] = infer_shapes(layers, input_shape, classes, tokens=tokens, path=path)
            first = layers[0]
            vocab_size = spec.data.vocab_size if tokens else None
            if vocab_size is not None and isinstance(first, Embedding) and first.num_embeddings < vocab_size:
                raise SpecError(
                    f"num_embeddings={first.num_embeddings} is smaller than the data's vocabulary of "
                    f"{vocab_size} tokens: some tokens would have no vector",
                    path=path + (0, "embedding", "num_embeddings"),
                    hint=f"use num_embeddings: {vocab_size} or more",
                )
            check_padding(shapes[name], spec.data.pad_id, path)  # an lstm must not read the padding
            # The task: the loss against the data's targets and the head, the metrics and the monitor.
            targets = targets_of(spec.data.target_kind, num_classes, spec.data.target_count)
            last = shapes[name].layers[-1]
            resolve_task(spec.train, shapes[name].output_shape, targets, path + (last.index, last.layer.type))
            if spec.train.network == name or len(spec.all_networks) == 1:  # the network a run trains
                check_freeze(spec.train.freeze, shapes[name])
        except SpecError as exc:
            issues += relocate(exc, source).issues
    if issues:
        raise SpecError(issues)
    notes = [] if num_classes is not None or spec.data.target_kind == "real" else [
        f"num_classes is known only from the data: shapes are checked with {STAND_IN_CLASSES} classes "
        "and `num_classes` sizes are resolved at run time"
    ]
    return shapes, notes


def _shape_key(spec: Spec) -> str:
    """What `check_shapes` reads: runs that agree on it need no second check."""
    data = spec.data.identity("val_split", "loader")
    networks = {name: [layer.model_dump(mode="json") for layer in layers] for name, layers in spec.all_networks.items()}
    networks["<blocks>"] = [block.model_dump(mode="json") for block in (spec.blocks or {}).values()]
    train = spec.train.model_dump(mode="json", include={"loss", "metrics", "monitor", "early_stopping", "scheduler",
                                                    "network", "freeze"})
    return json.dumps([data, networks, train])


def loads_spec(text: str, file: str = "<spec>", overrides: Sequence[str] = (), *, unset: Sequence[str] = (),
               check_data: bool = False) -> LoadedSpec:
    """`check_data`: also read what is cheap to read of the data's files (validate and run do; a
    stored spec read back by export or predict does not need its training data)."""
    raw, source = load_yaml(text, file)
    raw = apply_overrides(raw, overrides, source, unset)
    spec = validate_data(raw, source)
    issues = check_grid(raw, source)
    if spec.search is not None:
        issues += check_search(raw, source, spec.search.space)
    # Where a grid changes the data, its runs' data are read, not the spec's own (which none may run).
    data_by_grid = check_data and any(key.startswith("data.") and key.split(".")[1] not in LOADER_KEYS
                                      for key in spec.grid)
    checked: dict[str, Any] = {}
    try:
        _, notes = check_shapes(spec, source, check_data and not data_by_grid, checked)
    except SpecError as exc:
        issues += exc.issues
        notes = []
    if not issues:
        # A grid may change the data, a layer or the loss: check each distinct combination once,
        # within a budget of layers built, so that a grid of many architectures stays quick.
        seen, budget = (set() if data_by_grid else {_shape_key(spec)}), MAX_GRID_LAYER_CHECKS
        for run in LoadedSpec(spec, raw, source).runs():
            key = _shape_key(run.spec)
            if key in seen:
                continue
            budget -= sum(len(layers) for layers in run.spec.all_networks.values())
            if budget < 0:
                notes.append("the grid has more architectures than validate checks: the others are checked as they run")
                break
            seen.add(key)
            try:
                check_shapes(run.spec, SourceMap(source.file), check_data, checked)
            except SpecError as exc:
                # Located where the run's value was written: its grid value, the spec or a --set.
                issues += [source.issue(SpecIssue(f"run {run.name}: {i.message}",
                                                  grid_location(spec, run.values, i.path), i.hint))
                           for i in exc.issues]
    if issues:
        raise SpecError(issues)
    return LoadedSpec(spec, raw, source, notes)


def read_spec_text(path: str | FilePath) -> str:
    """The text of a spec file, refusing what is not one before reading it: a folder, a FIFO or a
    device (`/dev/zero` never ends, a FIFO with no writer never starts), or a file past the size
    limit (checked by its size first, and read at most one byte past the limit, in case it grows)."""
    file = str(path)
    try:
        with open(path, "rb", opener=_nonblocking) as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file (a FIFO, socket or device)"
                raise SpecError([SpecIssue(f"the spec is {kind}", file=file, hint="give a YAML file")])
            if info.st_size > MAX_SPEC_BYTES:
                raise _too_large(file, info.st_size)
            data = handle.read(MAX_SPEC_BYTES + 1)
    except FileNotFoundError:
        raise SpecError([SpecIssue("no such spec file", file=file, hint="check the path")]) from None
    except IsADirectoryError:
        raise SpecError([SpecIssue("the spec is a folder", file=file, hint="give a YAML file")]) from None
    except OSError as exc:
        raise SpecError([SpecIssue(f"cannot read the spec: {exc.strerror or exc}", file=file)]) from None
    if len(data) > MAX_SPEC_BYTES:
        raise _too_large(file, len(data))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError([SpecIssue(f"the spec is not UTF-8 text (byte {exc.start})", file=file)]) from None


def _nonblocking(path: str, flags: int) -> int:
    """Open without waiting for a FIFO's writer (the open itself would block); reads of a regular
    file are unaffected."""
    return os.open(path, flags | getattr(os, "O_NONBLOCK", 0))


def _too_large(file: str, size: int) -> SpecError:
    return SpecError([SpecIssue(f"the spec is larger than {MAX_SPEC_BYTES:,} bytes ({size:,} or more)", file=file,
                                hint="a spec is a page or two of YAML; is this the right file?")])


def load_spec(path: str | FilePath, overrides: Sequence[str] = (), *, unset: Sequence[str] = (),
              check_data: bool = False) -> LoadedSpec:
    return loads_spec(read_spec_text(path), str(path), overrides, unset=unset, check_data=check_data)
