"""`modelspec report` on real grids: a multi-class grid with a failed run, a binary run, a time-series
regression (its outputs in the data's units), a search; each page parses, holds its runs and figures,
references nothing outside itself, and (where Chromium is installed) renders its plots in a real
browser without a JavaScript error. Also: outputs.csv as the runner writes it, and no torch import."""

from __future__ import annotations

import base64
import csv
import json
import re
import shutil
import subprocess
import sys
import zlib
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("plotly", reason="the report extra (plotly) is not installed")

from modelspec.cli.main import app  # noqa: E402

from _specs import SYNTHETIC  # noqa: E402

runner = CliRunner()
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NO_CHROMIUM = "Chromium is not installed (apt-get install -y chromium)"

# sgd at lr 1e30 fails in epoch 1 (a NaN loss): the failed run the table must show with its reason.
MULTI = (SYNTHETIC.replace("epochs: 3", "epochs: 2").replace("size: 1200", "size: 300")
         .replace("name: adam", "name: sgd") + "grid:\n  train.optimizer.lr: [1.0e+30, 0.05]\n")
BINARY = """\
name: bin
seed: 0
data: {dataset: synthetic, input_shape: [16], num_classes: 2, size: 600, test_size: 100, batch_size: 64,
       val_split: 0.25, transforms: []}
model:
  - linear: {out_features: 16}
  - relu
  - linear: {out_features: 1}
train: {epochs: 3, optimizer: {name: adam, lr: 0.01}, loss: bce_with_logits, metrics: [accuracy, auroc],
        monitor: val_auroc}
"""
# A parabola, differenced and standardised for the model: outputs.csv must hold its levels again.
SERIES = """\
name: series
seed: 0
data: {dataset: time_series, path: PATH, features: [a, b], targets: [a], difference: true, scale: standard,
       window: 4, horizon: 1, val_split: 0.25, test_split: 0.2, batch_size: 8}
model:
  - flatten
  - linear: {out_features: 1}
train: {epochs: 3, optimizer: {name: adam, lr: 0.01}, loss: mse}
"""
SEARCH = """\
name: srch
seed: 3
data: {dataset: synthetic, size: 256, test_size: 64, input_shape: [8], num_classes: 3, val_split: 0.25,
       batch_size: 32}
model:
  - linear: {out_features: 16}
  - relu
  - linear: {out_features: num_classes}
train: {epochs: 3, optimizer: {name: sgd, lr: 0.01}}
search:
  space:
    train.optimizer.lr: {log_uniform: [1.0e-3, 0.5]}
    model[0].linear.out_features: {int: [4, 32], log: true}
    data.batch_size: {choice: [16, 32]}
  trials: 5
  sampler: {tpe: {startup_trials: 3}}
  seed: 11
"""


def level(t) -> np.ndarray:
    return 5.0 + 0.1 * np.asarray(t, dtype=np.float64) ** 2


def _series_csv(path: Path, rows: int = 80) -> Path:
    path.write_text("date,a,b\n" + "".join(f"d{t:03d},{float(level(t))!r},{t % 7}\n" for t in range(rows)))
    return path


def _train(root: Path, name: str, text: str) -> Path:
    spec = root / f"{name}.yaml"
    spec.write_text(text)
    result = runner.invoke(app, ["run", str(spec), "--quiet", "--set", f"tracking.dir={root / 'runs'}",
                                 "--set", "tracking.backends=[]"])
    assert result.exit_code in (0, 1), result.output  # 1: the multi-class grid's failed run
    (folder,) = (root / "runs" / name).iterdir()
    return folder


@pytest.fixture(scope="module")
def grids(tmp_path_factory) -> dict[str, Path]:
    """The four grids, trained once for the module (a few seconds each)."""
    root = tmp_path_factory.mktemp("report")
    found = {"multi": _train(root, "syn", MULTI), "binary": _train(root, "bin", BINARY),
             "regression": _train(root, "series", SERIES.replace("PATH", str(_series_csv(root / "series.csv"))))}
    if _have("optuna"):
        found["search"] = _train(root, "srch", SEARCH)
    return found


def _have(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def reports(grids) -> dict[str, Path]:
    """Each grid's report.html, written through the command line."""
    pages = {}
    for kind, folder in grids.items():
        result = runner.invoke(app, ["report", str(folder)])
        assert result.exit_code == 0, result.output
        pages[kind] = folder / "report.html"
        assert result.output.strip() == f"report: {pages[kind]}"
    return pages


def _outputs(run_dir: Path) -> tuple[list[str], np.ndarray]:
    with (run_dir / "outputs.csv").open(newline="") as file:
        header, *rows = list(csv.reader(file))
    return header, np.asarray(rows, dtype=float)


# --------------------------------------------------------------------------------------------------
# outputs.csv, as the runner writes it


def test_a_classifier_writes_its_class_probabilities_on_the_monitors_split(grids):
    header, table = _outputs(grids["multi"] / "01_lr=0.05")
    assert header == ["target", *(f"p:{c}" for c in range(5))]
    assert len(table) == 30  # the validation split: 10 % of 300
    np.testing.assert_allclose(table[:, 1:].sum(1), 1.0, atol=1e-5)
    # The counts the confusion matrix holds are these outputs' argmax against their targets.
    with (grids["multi"] / "01_lr=0.05" / "confusion_matrix.csv").open() as file:
        counts = np.asarray([row[1:] for row in list(csv.reader(file))[1:]], dtype=int)
    mine = np.zeros_like(counts)
    np.add.at(mine, (table[:, 0].astype(int), table[:, 1:].argmax(1)), 1)
    np.testing.assert_array_equal(mine, counts)
    assert not (grids["multi"] / "00_lr=1e+30" / "outputs.csv").exists()  # a failed run has no final model


def test_a_binary_run_writes_the_positive_probability(grids):
    header, table = _outputs(grids["binary"] / "00_run")
    assert header == ["target", "p:1"] and len(table) == 150
    assert set(table[:, 0]) == {0.0, 1.0} and ((0 <= table[:, 1]) & (table[:, 1] <= 1)).all()


def test_a_regression_writes_targets_and_predictions_in_the_datas_units(grids):
    header, table = _outputs(grids["regression"] / "00_run")
    assert header == ["target:a", "prediction:a"]
    # The targets are the parabola's own levels (the model saw standardised differences).
    levels = level(np.arange(80))
    assert np.abs(table[:, 0, None] - levels[None, :]).min(1).max() < 1e-3 * levels.max()
    assert table[:, 1].min() > 0  # a level plus a small change, not a standardised difference


def test_packed_runs_write_the_outputs_each_run_writes_alone(tmp_path):
    from modelspec.load import loads_spec
    from modelspec.runner import run_grid
    from modelspec.runner.vmap_grid import VmapExecutor

    text = MULTI.replace("[1.0e+30, 0.05]", "[0.05, 0.01]")
    results = [run_grid(loads_spec(text, "syn.yaml", [f"tracking.dir={tmp_path / name}", "tracking.backends=[]"]),
                        quiet=True, log=lambda _: None, **executor)
               for name, executor in (("alone", {}), ("packed", {"executor": VmapExecutor()}))]
    alone, packed = ({run: _outputs(folder) for run, folder in result.run_dirs.items()} for result in results)
    assert sorted(alone) == sorted(packed) == ["lr=0.01", "lr=0.05"]
    for run, (header, table) in alone.items():
        assert packed[run][0] == header
        np.testing.assert_allclose(packed[run][1], table, atol=1e-5)


# --------------------------------------------------------------------------------------------------
# the pages


class _Page(HTMLParser):
    """The tags and attributes of a page, its scripts' text, and its visible text."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[str] = []
        self.text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_endtag(self, tag):
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data
        else:
            self.text.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def _figures(page: _Page) -> list[list[dict]]:
    """Each figure's traces, from its Plotly.newPlot call."""
    found = []
    for script in page.scripts:
        if "Plotly.newPlot(" in script and "plotly.js v" not in script[:200]:
            start = script.index("[", script.index("Plotly.newPlot("))
            found.append(json.JSONDecoder().raw_decode(script[start:])[0])
    return found


def _values(data) -> np.ndarray:
    """A trace's array: a JSON list, or Plotly's base64 typed array ({"dtype": "f8", "bdata": ...})."""
    if isinstance(data, dict) and "bdata" in data:
        values = np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"])
        return values.reshape(data["shape"]) if isinstance(data.get("shape"), list) else values
    return np.asarray(data)


KINDS = ["multi", "binary", "regression", "search"]


@pytest.mark.parametrize("kind", KINDS)
def test_each_page_parses_and_references_nothing_outside_itself(reports, kind):
    if kind not in reports:
        pytest.skip("the search extra (optuna) is not installed")
    page = _parse(reports[kind])
    for tag, attrs in page.tags:
        assert tag != "link", attrs  # no style sheet or icon fetched
        for key in ("src", "href"):
            assert not attrs.get(key), (tag, attrs)  # every script inline, no image or link out
    # plotly.js once for the whole page, however many figures.
    assert sum("plotly.js v" in script[:200] for script in page.scripts) == 1
    assert len(_figures(page)) >= 2  # at least the learning curves and the best run's
    assert reports[kind].stat().st_size < 8_000_000


def _text(path: Path) -> str:
    return " ".join(" ".join(_parse(path).text).split())


def test_the_multi_class_page_shows_every_run_the_failure_and_the_confusion_matrix(reports, grids):
    page = _parse(reports["multi"])
    text = _text(reports["multi"])
    assert "lr=0.05" in text and "lr=1e+30" in text
    assert "failed" in text and "the training loss became nan in epoch 1" in text
    traces = [trace for figure in _figures(page) for trace in figure]
    names = {trace.get("name") for trace in traces}
    assert {"lr=0.05"} <= names  # the learning curves; the failed run logged no epoch
    heatmaps = [trace for trace in traces if trace["type"] == "heatmap"]
    assert len(heatmaps) == 2 and list(heatmaps[0]["x"]) == [str(c) for c in range(5)]
    with (grids["multi"] / "01_lr=0.05" / "confusion_matrix.csv").open() as file:
        counts = [[int(v) for v in row[1:]] for row in list(csv.reader(file))[1:]]
    np.testing.assert_array_equal(_values(heatmaps[0]["z"]), counts)
    assert "Spec differences" in text and "train.optimizer.lr" in text
    assert "Calibration of the predicted class" in text


def test_the_binary_page_has_roc_precision_recall_and_calibration(reports):
    html = reports["binary"].read_text(encoding="utf-8")  # the subplots' titles are in the figures' data
    assert re.search(r"ROC \(AUC 0\.\d{3}\)", html) and "precision-recall (AP" in html and "calibration" in html
    assert "Spec differences" not in _text(reports["binary"])  # one run: nothing to compare


def test_the_regression_page_plots_the_datas_units(reports, grids):
    page = _parse(reports["regression"])
    assert "a: predicted against actual" in reports["regression"].read_text(encoding="utf-8")
    _, table = _outputs(grids["regression"] / "00_run")
    scatter = next(trace for figure in _figures(page) for trace in figure
                   if trace["type"] == "scatter" and trace.get("mode") == "markers")
    np.testing.assert_allclose(_values(scatter["x"]), table[:, 0])  # predicted against actual, in levels


def test_the_search_page_has_its_history_and_importances(reports, grids):
    if "search" not in reports:
        pytest.skip("the search extra (optuna) is not installed")
    text = _text(reports["search"])
    summary = json.loads((grids["search"] / "search.json").read_text())
    for trial in summary["trials"]:
        assert trial["run"] in text
    assert "Optimisation history" in text and "Parameter importance" in text
    traces = [trace for figure in _figures(_parse(reports["search"])) for trace in figure]
    assert any(trace.get("name") == "best so far" for trace in traces)
    assert any(trace["type"] == "parcoords" for trace in traces)
    if summary["importance"]:
        bars = next(trace for trace in traces if trace["type"] == "bar" and trace.get("orientation") == "h")
        assert set(bars["y"]) == set(summary["importance"])


def test_run_and_out_options(grids, tmp_path):
    out = tmp_path / "pages" / "multi.html"
    result = runner.invoke(app, ["report", str(grids["multi"]), "--out", str(out), "--run", "lr=1e+30"])
    assert result.exit_code == 0, result.output
    text = _text(out)
    assert "Run lr=1e+30" in text and "it has no final model" in text


@pytest.mark.parametrize("args, says", [
    (["--run", "lr=7"], "--run lr=7: no such run"),
    (["--out", "/proc/version/report.html"], "--out /proc/version/report.html: cannot write there"),
])
def test_bad_options_are_usage_errors(grids, args, says):
    result = runner.invoke(app, ["report", str(grids["multi"]), *args])
    assert result.exit_code == 2 and says in result.output, result.output


def test_a_folder_that_is_no_grid_is_a_usage_error(tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "is not a grid folder" in result.output


def test_a_run_without_outputs_gets_a_line_instead_of_its_curves(grids, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(grids["binary"], old)
    (old / "00_run" / "outputs.csv").unlink()  # as a run trained before the runner wrote it
    result = runner.invoke(app, ["report", str(old)])
    assert result.exit_code == 0, result.output
    text = _text(old / "report.html")
    assert "no outputs.csv" in text and "ROC" not in text and "Confusion matrix" in text


def test_report_never_imports_torch(grids):
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "modelspec", "report", str(grids["multi"])],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    modules = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert not {m for m in modules if m == "torch" or m.startswith("torch.")}


# --------------------------------------------------------------------------------------------------
# in a real browser


def _browse(page: Path, shot: Path, profile: Path) -> str:
    """Open `page` in headless Chromium: its screenshot to `shot`, and the DOM once loaded."""
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
         "--hide-scrollbars", "--window-size=1400,3000", f"--screenshot={shot}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _colours(png: Path) -> int:
    """Distinct colours of a PNG (PIL where installed; else its IDAT decompressed, counting byte
    triples: enough to tell a blank page from a drawn one)."""
    try:
        from PIL import Image
    except ImportError:
        data = png.read_bytes()
        chunks, at = [], 8
        while at < len(data):
            size = int.from_bytes(data[at:at + 4], "big")
            if data[at + 4:at + 8] == b"IDAT":
                chunks.append(data[at + 8:at + 8 + size])
            at += 12 + size
        raw = zlib.decompress(b"".join(chunks))
        return len({raw[i:i + 3] for i in range(0, min(len(raw), 3_000_000), 3)})
    with Image.open(png) as image:
        return len(image.convert("RGB").getcolors(1 << 24) or [])


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
@pytest.mark.parametrize("kind", KINDS)
def test_each_page_renders_its_plots_in_chromium(reports, kind, tmp_path):
    if kind not in reports:
        pytest.skip("the search extra (optuna) is not installed")
    shot = tmp_path / f"{kind}.png"
    dom = _browse(reports[kind], shot, tmp_path / "profile")
    errors = re.search(r'<div id="js-errors">(.*?)</div>', dom, re.S)
    assert errors is not None and errors.group(1).strip() == "", errors.group(1) if errors else dom[-2000:]
    drawn = len(re.findall(r'class="[^"]*\bjs-plotly-plot\b', dom))
    assert drawn == len(_figures(_parse(reports[kind]))) and drawn >= 2
    assert dom.count('class="plot-container') >= drawn  # each figure drew its SVG container
    assert _colours(shot) > 50  # a blank or text-only page has a handful


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_a_script_error_is_written_into_the_page(reports, tmp_path):
    """The check above would see an error: one thrown by a script shows in the js-errors box."""
    broken = tmp_path / "broken.html"
    text = reports["binary"].read_text(encoding="utf-8")
    broken.write_text(text.replace("</body>", "<script>notAFunction();</script></body>"), encoding="utf-8")
    dom = _browse(broken, tmp_path / "broken.png", tmp_path / "profile")
    assert "JavaScript error: " in dom and "notAFunction" in dom
