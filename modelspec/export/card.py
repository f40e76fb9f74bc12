"""MODEL_CARD.md: what an export holds, as facts read from the model and the run's files.

Written after the exported files and export_report.json, so it can hash each of them. Each section is
one small function that returns its lines; nothing is left for a person to fill in. A fact the files do
not hold says "unknown" (an export of a bare weights file has no run folder: no rows, no metrics).

Where the facts come from:
- the model: the spec's network, shape-inferred as `modelspec summary` does (compile/shapes.py);
- the data and preprocessing: the spec's data section and what was fitted (preprocessing.json's `data`);
- the training: the stored spec (weights.pt), the run's run.json (or rows.jsonl while the run closes),
  the grid's results.json (its values), and the confusion matrix / outputs.csv the run wrote;
- the export: the ExportReport just written;
- the hashes: SHA-256 of every file named, read back from the disk.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..artifacts import TrainedModel
from ..compile import infer_shapes
from ..compile.shapes import INPUT_INDEX, NetworkShapes
from ..compile.task import split_of
from ..fileio import (GRID_FILE, OUTPUTS_FILE, RESULTS_FILE, RUN_FILE, WEIGHTS_FILE, atomic_write_text)
from ..runner.checkpoint import DATA_LOCATIONS
from ..spec.layers import INPUT, fmt_shape
from ..spec.metrics import DEFAULT_METRICS, metric_direction
from ..tracking.results import ROWS_FILE, read_rows
from .plan import PREPROCESSING_FILE, TOKENIZER_FILE, data_files
from .report import REPORT_FILE, ExportReport

CARD_FILE = "MODEL_CARD.md"
CONFUSION_FILE = "confusion_matrix.csv"  # tracking/confusion.py writes it: rows true, columns predicted
SPEC_FILES = ("spec.yaml", "spec.json")  # in the grid folder: the spec as run (runner/folder.py)
MAX_CONFUSION_CLASSES = 40  # a wider matrix is named and hashed, not printed
MAX_PREPROCESSING_CHARS = 20_000  # a table's category lists can be long: past this, the file is named
UNKNOWN = "unknown"


@dataclass
class RunFiles:
    """What the run folder (if any) holds, read once."""

    run_dir: Path | None
    state: dict[str, Any] | None = None  # run.json, None while the run closes or for a bare weights file
    rows: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] | None = None  # this run's entry of the grid's results.json
    values: dict[str, Any] | None = None  # grid or search values

    @property
    def grid_dir(self) -> Path | None:
        """The grid folder the run is in, where it is one (runner/folder.py writes grid.json first)."""
        if self.run_dir is None:
            return None
        grid = self.run_dir.parent
        return grid if (grid / GRID_FILE).is_file() or (grid / RESULTS_FILE).is_file() else None


# ---- small readers


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_digest(folder: Path) -> tuple[int, str]:
    """(file count, SHA-256 over the sorted "relative/path\\tsize\\n" lines): a folder of thousands of
    images is fingerprinted by its listing, not read."""
    files = sorted((p.relative_to(folder).as_posix(), p.stat().st_size) for p in folder.rglob("*") if p.is_file())
    listing = "".join(f"{name}\t{size}\n" for name, size in files)
    return len(files), hashlib.sha256(listing.encode("utf-8")).hexdigest()


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_run(run_dir: Path | None, values: dict[str, Any] | None) -> RunFiles:
    """run.json (else rows.jsonl, while an export after the run runs before run.json is written) and
    this run's summary in the grid's results.json."""
    run = RunFiles(run_dir, values=values)
    if run_dir is None:
        return run
    state = _json(run_dir / RUN_FILE)
    run.state = state if isinstance(state, dict) else None
    rows = run.state.get("rows") if run.state else None
    run.rows = [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else read_rows(run_dir)
    results = _json(run.grid_dir / RESULTS_FILE) if run.grid_dir is not None else None
    entries = results.get("runs") if isinstance(results, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("dir") == run_dir.name:
            run.summary = entry
    if run.values is None and run.summary is not None and isinstance(run.summary.get("values"), dict):
        run.values = run.summary["values"]
    return run


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return UNKNOWN if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.6g}" if math.isfinite(value) else str(value)


def _code(value: Any) -> str:
    return f"`{json.dumps(value, ensure_ascii=False)}`"


# ---- sections


def model_section(trained: TrainedModel) -> list[str]:
    """The network summary, as `modelspec summary` computes it, from the shapes of the spec's layers."""
    spec, info = trained.spec, trained.info
    shapes = infer_shapes(spec.layers, tuple(info.input_shape), info.num_classes,
                          tokens=info.input_dtype == "int64")
    built = sum(p.numel() for p in trained.model.parameters())
    task = info.task or {}
    lines = [
        "## Model", "",
        f"- network: `{spec.network_name}` of spec `{spec.name}`",
        f"- input: {fmt_shape(tuple(info.input_shape))} per sample, {info.input_dtype}",
        f"- output: {fmt_shape(shapes.output_shape)} per sample",
        f"- task: {task.get('kind', UNKNOWN)}; loss {task.get('loss', UNKNOWN)}"
        + (f"; decision threshold {task['threshold']}" if task.get("kind") in ("binary", "multilabel") else ""),
        f"- parameters: {shapes.parameters:,}" + ("" if built == shapes.parameters else f" (the built model: {built:,})"),
    ]
    if spec.train.freeze:
        lines.append(f"- frozen in training (train.freeze): {', '.join(spec.train.freeze)}")
    return [*lines, "", *layer_table(shapes)]


def layer_table(network: NetworkShapes) -> list[str]:
    graph = not network.is_stack
    head = ["#", "layer", *(["from"] if graph else []), "output shape", "parameters"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in network.layers:
        label = row.layer.label
        if row.layer.name is not None and row.layer.name not in label.split():
            label = f"{row.layer.name}: {label}"
        sources = [", ".join(INPUT if s == INPUT_INDEX else network.layers[s].key for s in row.sources)]
        cells = [str(row.index), label, *(sources if graph else []), fmt_shape(row.output_shape), f"{row.parameters:,}"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    total = ["", "total", *([""] if graph else []), fmt_shape(network.output_shape), f"{network.parameters:,}"]
    lines.append("| " + " | ".join(total) + " |")
    return lines


def data_section(trained: TrainedModel, run: RunFiles) -> list[str]:
    spec, info = trained.spec, trained.info
    data = spec.data
    lines = ["## Data", "", f"- kind: `{data.dataset}`"]
    lines += split_lines(trained, run)
    if info.class_names is not None:
        lines.append(f"- classes ({len(info.class_names)}): " + ", ".join(map(str, info.class_names)))
    if info.target_names:
        lines.append("- targets: " + ", ".join(map(str, info.target_names)))
    if info.normalize:
        lines.append(f"- normalisation fitted on the training split: mean {info.normalize['mean']}, "
                     f"std {info.normalize['std']}")
    transforms = [t.model_dump(mode="json") for t in data.sample_transforms()]
    lines.append(f"- deterministic transforms: {_code(transforms) if transforms else 'none'}")
    lines += ["", "The data section as the run resolved it:", "", "```json",
              json.dumps(data.identity(), indent=1, ensure_ascii=False), "```"]
    fitted = data_files(info.preprocessing)[0]
    text = json.dumps(fitted, indent=1, ensure_ascii=False) if fitted else None
    if text is None:
        lines += ["", "Fitted preprocessing: none beyond the normalisation above."]
    elif len(text) > MAX_PREPROCESSING_CHARS:
        lines += ["", f"Fitted preprocessing: {len(text):,} characters of JSON, in `{PREPROCESSING_FILE}` under "
                      "`data` (hashed below)."]
    else:
        lines += ["", f"Fitted preprocessing (`{PREPROCESSING_FILE}`, `data`):", "", "```json", text, "```"]
    return lines


def split_lines(trained: TrainedModel, run: RunFiles) -> list[str]:
    """The splits the spec carves, and the sizes the run's files record (the monitor's split: the
    confusion matrix's total, or outputs.csv's rows)."""
    data = trained.spec.data
    lines = [f"- validation: {data.val_split:g} of the training samples, drawn with seed {trained.spec.seed}"
             if data.val_split else "- validation: no split carved from the training data (val_split 0)"]
    test_split = getattr(data, "test_split", None)
    if test_split:
        lines.append(f"- test: {test_split:g} of the samples, drawn with seed {trained.spec.seed}")
    for key in ("size", "test_size"):
        if getattr(data, key, None) is not None:
            lines.append(f"- {key.replace('_', ' ')}: {getattr(data, key):,} samples (generated)")
    counted = monitor_split_size(trained, run)
    if counted is not None:
        lines.append(f"- {counted[0]} split: {counted[1]:,} samples ({counted[2]})")
    return lines


def monitor_split_size(trained: TrainedModel, run: RunFiles) -> tuple[str, int, str] | None:
    if run.run_dir is None:
        return None
    split = _monitor_split(trained)
    confusion = read_confusion(run.run_dir / CONFUSION_FILE)
    if confusion is not None:
        return split, sum(map(sum, confusion[1])), "the confusion matrix's total"
    outputs = run.run_dir / OUTPUTS_FILE
    if outputs.is_file():
        with outputs.open(newline="", encoding="utf-8") as file:
            count = sum(1 for _ in csv.reader(file)) - 1
        if 0 < count < 20_000:  # runner/outputs.py keeps at most the first 20,000 rows
            return split, count, f"{OUTPUTS_FILE}'s rows"
    return None


def _monitor_split(trained: TrainedModel) -> str:
    return split_of((trained.info.task or {}).get("monitor") or "")


def training_section(trained: TrainedModel, run: RunFiles) -> list[str]:
    spec, train = trained.spec, trained.spec.train
    state = run.state or {}
    epochs = f"{len(run.rows)} of {train.epochs}" if run.rows else f"{UNKNOWN} (of {train.epochs} asked)"
    status = state.get("status") or (run.summary or {}).get("status")
    if status is None and run.rows:
        status = "training ended (exported at the run's end, before its run.json was written)"
    if run.run_dir is None:
        where = f"{UNKNOWN} (exported from a weights file without its run folder)"
    elif run.state is None and not run.rows:
        where = f"{UNKNOWN} (the weights' folder {run.run_dir} holds no {RUN_FILE} or {ROWS_FILE})"
    else:
        where = str(run.run_dir)
    lines = [
        "## Training", "",
        f"- run: {where}",
        f"- status: {status or UNKNOWN}" + (f" ({state['reason']})" if state.get("reason") else ""),
        f"- epochs trained: {epochs}",
        f"- seed: {spec.seed}",
        f"- optimizer: {_code(train.optimizer.model_dump(mode='json', exclude_none=True))}",
        f"- loss: {_code(train.loss.model_dump(mode='json', exclude_none=True))}",
        f"- batch size: {spec.data.batch_size}",
    ]
    for key in ("scheduler", "early_stopping", "grad_clip", "amp", "init_from", "freeze"):
        value = getattr(train, key, None)
        if value not in (None, [], (), False):
            dumped = value.model_dump(mode="json", exclude_none=True) if hasattr(value, "model_dump") else value
            lines.append(f"- {key.replace('_', ' ')}: {_code(dumped)}")
    if run.values is None:
        lines.append(f"- grid values: {UNKNOWN}")
    elif run.values:
        lines.append("- grid values: " + ", ".join(f"`{k}` = {_code(v)}" for k, v in run.values.items()))
    else:
        lines.append("- grid values: none (a single run)")
    return lines


def _higher_is_better(trained: TrainedModel, run: RunFiles, monitor: str) -> bool:
    """The monitor's direction as the run recorded it, else from the metric's own definition."""
    recorded = ((run.state or {}).get("monitor") or {}).get("higher_is_better")
    if isinstance(recorded, bool):
        return recorded
    mode = (run.summary or {}).get("monitor_mode")
    if mode in ("max", "min"):
        return mode == "max"
    kind = (trained.info.task or {}).get("kind", "multiclass")
    metrics = tuple(trained.spec.train.metrics or DEFAULT_METRICS.get(kind, ()))
    bare = monitor.split("_", 1)[1] if monitor.split("_", 1)[0] in ("val", "test", "train") else monitor
    direction = metric_direction(bare, metrics)
    return bool(direction) if direction is not None else False


def best_epoch(trained: TrainedModel, run: RunFiles) -> tuple[str, dict[str, Any]] | None:
    """(monitor, the row of the epoch with its best value), or None if no row has it."""
    monitor = (trained.info.task or {}).get("monitor")
    scored = [r for r in run.rows if isinstance(r.get(monitor), (int, float)) and math.isfinite(r[monitor])]
    if not monitor or not scored:
        return None
    pick = max if _higher_is_better(trained, run, monitor) else min
    return monitor, pick(scored, key=lambda r: r[monitor])  # the first epoch of a tie, as the runner keeps it


def metrics_section(trained: TrainedModel, run: RunFiles) -> list[str]:
    lines = ["## Metrics", ""]
    if not run.rows:
        return [*lines, f"Validation and test metrics: {UNKNOWN} (no run rows beside these weights)."]
    final = run.rows[-1]
    best = best_epoch(trained, run)
    best_row = best[1] if best else None
    if best:
        better = "higher" if _higher_is_better(trained, run, best[0]) else "lower"
        lines += [f"Monitor `{best[0]}` ({better} is better): best at epoch {best_row['epoch']}; "
                  f"the final epoch is {final['epoch']}; the weights are the final epoch's.", ""]
    keys = [k for k in final if k.startswith(("val_", "test_"))]
    keys += [k for r in run.rows for k in r if k.startswith(("val_", "test_")) and k not in keys]
    keys = list(dict.fromkeys(keys))
    if not keys:
        return [*lines, "The run recorded no validation or test metrics."]
    head = ["metric", *([f"best epoch ({best_row['epoch']})"] if best_row else []), f"final epoch ({final['epoch']})"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key in keys:
        cells = [f"`{key}`", *([_number(best_row.get(key))] if best_row else []), _number(final.get(key))]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def read_confusion(path: Path) -> tuple[list[str], list[list[int]]] | None:
    try:
        with path.open(newline="", encoding="utf-8") as file:
            header, *rows = list(csv.reader(file))
        return header[1:], [[int(cell) for cell in row[1:]] for row in rows]
    except (OSError, ValueError, IndexError):
        return None


def errors_section(trained: TrainedModel, run: RunFiles) -> list[str]:
    """The confusion matrix (classification) or the errors per target (regression) of the final
    model on the monitor's split, from the files the run wrote."""
    kind = (trained.info.task or {}).get("kind")
    if run.run_dir is None:
        return []
    split = _monitor_split(trained)
    confusion = read_confusion(run.run_dir / CONFUSION_FILE)
    if confusion is not None:
        return confusion_lines(*confusion, split)
    if kind == "regression":
        return regression_lines(run.run_dir / OUTPUTS_FILE, split)
    return []


def confusion_lines(names: list[str], counts: list[list[int]], split: str) -> list[str]:
    total = sum(map(sum, counts))
    right = sum(counts[i][i] for i in range(min(len(counts), len(names))))
    lines = ["", f"### Confusion matrix (final model, {split} split, {total:,} samples; {right:,} on the diagonal)", ""]
    if len(names) > MAX_CONFUSION_CLASSES:
        return [*lines, f"{len(names)} classes: the counts are in the run's `{CONFUSION_FILE}` (hashed below)."]
    lines += ["| true \\ predicted | " + " | ".join(n.replace("|", "\\|") for n in names) + " |",
              "|" + "---|" * (len(names) + 1)]
    for name, row in zip(names, counts):
        lines.append(f"| **{name.replace('|', chr(92) + '|')}** | " + " | ".join(str(c) for c in row) + " |")
    return lines


def regression_lines(path: Path, split: str) -> list[str]:
    """MAE, RMSE and the largest error per target, from outputs.csv's `target:<name>`, `prediction:<name>`
    columns (in the data's units)."""
    try:
        with path.open(newline="", encoding="utf-8") as file:
            rows = list(csv.DictReader(file))
    except (OSError, ValueError):  # ValueError: not UTF-8
        return []
    targets = [c[len("target:"):] for c in (rows[0].keys() if rows else []) if c.startswith("target:")]
    lines = ["", f"### Regression errors (final model, {split} split, {len(rows):,} rows of `{OUTPUTS_FILE}`, "
                 "in the data's units)", "", "| target | MAE | RMSE | max abs error |", "|---|---|---|---|"]
    for name in targets:
        errors = [error for r in rows if (error := _abs_error(r, name)) is not None]
        if not errors:
            continue
        mae, rmse = sum(errors) / len(errors), math.sqrt(sum(e * e for e in errors) / len(errors))
        lines.append(f"| {name} | {mae:.6g} | {rmse:.6g} | {max(errors):.6g} |")
    return lines if targets else []


def _abs_error(row: dict[str, str], name: str) -> float | None:
    try:
        error = abs(float(row[f"prediction:{name}"]) - float(row[f"target:{name}"]))
    except (KeyError, TypeError, ValueError):  # a cell left empty
        return None
    return error if math.isfinite(error) else None


def export_section(report: ExportReport) -> list[str]:
    lines = ["## Export verification", "",
             f"Each file was loaded back and compared with the eager model on {report.inputs}: "
             f"|exported - eager| <= atol + rtol·|eager|, atol {report.atol:g}, rtol {report.rtol:g}.", "",
             "| format | file | method | check | input shape | max abs difference | status |",
             "|---|---|---|---|---|---|---|"]
    for result in report.formats:
        status = "ok" if result.passed else "FAILED"
        if not result.checks:
            lines.append(f"| {result.format} | {result.file or 'none'} | {result.method or 'none'} | none | | | {status} |")
        for check in result.checks:
            error = "n/a" if check.max_abs_error is None else f"{check.max_abs_error:.3e}"
            note = f" ({check.error})" if check.error else ""
            lines.append(f"| {result.format} | {result.file} | {result.method} | {check.case} | "
                         f"{list(check.input_shape)} | {error} | {'ok' if check.passed else 'FAILED'}{note} |")
    verdict = "every check passed" if report.passed else "FAILED: " + "; ".join(report.failures)
    return [*lines, "", f"Verdict: {verdict}."]


def data_hash_rows(trained: TrainedModel, run: RunFiles) -> list[tuple[str, str, str]]:
    """(what, path, hash) for each file or folder the data section names (data.root, data.path, ...),
    relative paths anchored where the grid was started."""
    data = trained.spec.data
    start = Path.cwd()
    if run.grid_dir is not None:
        stored = _json(run.grid_dir / GRID_FILE)
        if isinstance(stored, dict) and isinstance(stored.get("cwd"), str):
            start = Path(stored["cwd"])
    rows = []
    for key in DATA_LOCATIONS:
        value = getattr(data, key, None)
        if not isinstance(value, str):
            continue
        path = Path(value) if Path(value).is_absolute() else start / value
        if path.is_file():
            rows.append((f"data.{key}", str(path), sha256_file(path)))
        elif path.is_dir():
            count, digest = folder_digest(path)
            rows.append((f"data.{key} (folder: {count:,} files; hash of the sorted "
                         "`relative/path<TAB>size` lines, not of the contents)", str(path), digest))
        else:
            rows.append((f"data.{key}", str(path), "not on this machine"))
    return rows


def hash_rows(trained: TrainedModel, run: RunFiles, report: ExportReport, out_dir: Path) -> list[tuple[str, str, str]]:
    rows = []
    resolved = json.dumps(trained.spec.resolved(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    rows.append(("the run's resolved spec, stored in its weights (JSON, sorted keys, no spaces)", "",
                 hashlib.sha256(resolved.encode("utf-8")).hexdigest()))
    if run.grid_dir is not None:
        for name in SPEC_FILES:
            if (run.grid_dir / name).is_file():
                rows.append(("the spec as run (the grid folder's copy)", str(run.grid_dir / name),
                             sha256_file(run.grid_dir / name)))
    if run.run_dir is not None:
        for name, what in ((WEIGHTS_FILE, "the trained weights"), (CONFUSION_FILE, "the confusion matrix")):
            if (run.run_dir / name).is_file():
                rows.append((what, str(run.run_dir / name), sha256_file(run.run_dir / name)))
    rows += data_hash_rows(trained, run)
    exported = [r.file for r in report.formats if r.file]
    for name in [*exported, PREPROCESSING_FILE, TOKENIZER_FILE, REPORT_FILE]:  # all the export writes
        if (out_dir / name).is_file():
            rows.append(("exported file", name, sha256_file(out_dir / name)))
    return rows


def hashes_section(rows: list[tuple[str, str, str]]) -> list[str]:
    lines = ["## SHA-256", "", "Check a file with `sha256sum FILE` (exported files are named relative to this folder).", "",
             "| what | file | SHA-256 |", "|---|---|---|"]
    return [*lines, *(f"| {what} | {f'`{path}`' if path else ''} | `{digest}` |" for what, path, digest in rows)]


# ---- the card


def card_text(trained: TrainedModel, report: ExportReport, out_dir: Path, run_dir: Path | None = None,
              values: dict[str, Any] | None = None) -> str:
    run = read_run(run_dir, values)
    spec = trained.spec
    head = [f"# Model card: {spec.name} (network {spec.network_name})", "",
            f"Written by `modelspec export` on {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, "
            "from the model, its run's files and the export's checks; every figure is read, none is typed in."]
    sections = [head, model_section(trained), data_section(trained, run), training_section(trained, run),
                metrics_section(trained, run) + errors_section(trained, run), export_section(report),
                hashes_section(hash_rows(trained, run, report, out_dir))]
    return "\n\n".join("\n".join(section) for section in sections) + "\n"


def write_card(trained: TrainedModel, report: ExportReport, out_dir: Path, run_dir: Path | None = None,
               values: dict[str, Any] | None = None) -> Path:
    """MODEL_CARD.md in out_dir, written atomically; run_dir: the run the weights came from (None: a
    bare weights file); values: its grid values, where results.json does not hold them yet."""
    path = out_dir / CARD_FILE
    atomic_write_text(path, card_text(trained, report, out_dir, run_dir, values))
    return path


def run_folder_of(out_dir: Path) -> Path | None:
    """The run an export folder belongs to by default (<run>/export): where its weights are."""
    parent = out_dir.parent
    return parent if (parent / WEIGHTS_FILE).is_file() or (parent / ROWS_FILE).is_file() else None
