"""MLflow: one MLflow run per modelspec run, in an experiment named after the spec.

Params: the resolved spec flattened to dotted keys (`train.optimizer.lr`, `model.0.p`) and the
run's grid values under their results-table column (`lr`). Metrics: every number of each epoch's row,
with step = epoch. Artefacts: the resolved spec (`spec.yaml`), the weights, the confusion files and
the export folder. The run id is kept in the run folder (`mlflow.json`), so `modelspec resume`
continues the same MLflow run, logging only the epochs MLflow does not have yet.

The store is `tracking.mlflow.uri`, else a local file store `mlruns/` beside the `tracking.dir` folder.
mlflow is imported only when a run starts (it is an optional extra: `pip install 'modelspec[mlflow]'`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

from pydantic import Field

from ..errors import SpecError
from ..fileio import atomic_write_text
from ..spec.base import RESUME_SAFE, SpecModel
from .base import TrackedRun, Tracker, numbers

_NOT_IN_KEYS = re.compile(r"[^A-Za-z0-9_\-./ ]")
RUN_FILE = "mlflow.json"  # in the run folder: which MLflow run it is
PARAM_LENGTH, KEY_LENGTH, BATCH = 6000, 250, 100  # MLflow's limits: a param's value and key, one log_batch


class MlflowOptions(SpecModel):
    """Where the `mlflow` backend logs: the tracking store and the experiment."""

    uri: Annotated[Optional[str], RESUME_SAFE] = Field(None, min_length=1)
    """The MLflow tracking URI (`http://host:5000`, `sqlite:///mlflow.db`, `file:///abs/mlruns`);
    default: a local file store, the folder `mlruns/` beside the `tracking.dir` folder."""
    experiment: Annotated[Optional[str], RESUME_SAFE] = Field(None, min_length=1)
    """The MLflow experiment the runs go to; default: the spec's `name`."""


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """{"train": {"optimizer": {"lr": 0.1}}} -> {"train.optimizer.lr": "0.1"}; a list of mappings (a
    network's layers) by index (`model.0.p`), any other list whole, as JSON (`data.input_shape`)."""
    items = (value.items() if isinstance(value, dict) else
             enumerate(value) if isinstance(value, list) and value and all(isinstance(v, dict) for v in value) else None)
    if items is None or not value:
        return {prefix: value if isinstance(value, str) else json.dumps(value, default=str)}
    out: dict[str, str] = {}
    for key, item in items:
        out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return out


def mlflow_key(key: str) -> str:
    """A name MLflow takes: letters, digits and `_ - . / space`, at most 250 characters
    (`networks.cnn[0].out_channels` -> `networks.cnn_0_.out_channels`)."""
    return _NOT_IN_KEYS.sub("_", key)[:KEY_LENGTH]


def default_uri(run_dir: Path) -> str:
    """file: URI of `mlruns/` beside the tracking.dir folder (the run is <dir>/<name>/<timestamp>/<run>)."""
    return (run_dir.resolve().parents[3] / "mlruns").as_uri()


class MlflowTracker(Tracker):
    """The run's params, per-epoch metrics and files in MLflow."""

    name = "mlflow"
    Options = MlflowOptions
    takes_files = True

    @classmethod
    def check(cls, options: MlflowOptions | None) -> None:
        if importlib.util.find_spec("mlflow") is None:
            raise SpecError("tracking.backends lists mlflow, but the mlflow package is not installed",
                            path=("tracking", "backends"), hint="pip install 'modelspec[mlflow]'")

    def __init__(self, run: TrackedRun, options: MlflowOptions | None = None):
        super().__init__(run, options or MlflowOptions())
        self.uri = self.options.uri or default_uri(run.run_dir)
        self.client, self.run_id = None, None
        self.logged: dict[str, int] = {}  # metric -> the last step MLflow has (a resumed run's)

    def start(self, resume_step: int | None, rows: list[dict[str, Any]]) -> None:
        if self.uri.startswith("file:"):
            # MLflow 3.x refuses its file store unless this is set (it is in maintenance mode, not
            # removed); the default store is one, as it needs no database or server. Set for the
            # process: every client MLflow makes checks it again.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(self.uri)
        stored = self._stored_run()
        if stored is not None:  # resumed: the same MLflow run goes on
            self.run_id = stored
            self.client.update_run(self.run_id, status="RUNNING")
            self.logged = {key: max((m.step for m in self.client.get_metric_history(self.run_id, key)), default=0)
                           for key in self.client.get_run(self.run_id).data.metrics}
        else:
            self._create()
        for row in rows:  # a resumed run's rows that MLflow lacks (a backend off when they ran)
            self.log(row["epoch"], row)

    def _stored_run(self) -> str | None:
        """The MLflow run this run folder started in, if the store still has it."""
        from mlflow.exceptions import MlflowException

        try:
            stored = json.loads((self.run.run_dir / RUN_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(stored, dict) or stored.get("uri") != self.uri or not isinstance(stored.get("run_id"), str):
            return None  # another store: a new run there
        try:
            self.client.get_run(stored["run_id"])
        except MlflowException:  # deleted from the store since: a new run
            return None
        return stored["run_id"]

    def _create(self) -> None:
        from mlflow.entities import Param

        spec = self.run.spec
        experiment = self.options.experiment or str(spec.get("name", "modelspec"))
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        created = self.client.create_run(experiment_id, run_name=self.run.name,
                                         tags={"modelspec.grid": str(self.run.grid_dir.resolve()),
                                               "modelspec.run_dir": str(self.run.run_dir.resolve())})
        self.run_id = created.info.run_id
        atomic_write_text(self.run.run_dir / RUN_FILE, json.dumps({"uri": self.uri, "run_id": self.run_id}))
        params = {**flatten(spec), **{str(k): v if isinstance(v, str) else json.dumps(v, default=str)
                                      for k, v in self.run.hparams.items()}}
        named = {mlflow_key(key): value[:PARAM_LENGTH] for key, value in params.items()}
        items = [Param(key, value) for key, value in named.items()]
        for i in range(0, len(items), BATCH):
            self.client.log_batch(self.run_id, params=items[i:i + BATCH])
        self.client.log_dict(self.run_id, spec, "spec.yaml")

    def _metrics(self, values: dict[str, float], step: int) -> None:
        """Values at `step`, but for a metric MLflow has at this step or later (no step twice)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        named = {mlflow_key(key): value for key, value in values.items()}
        items = [Metric(key, float(value), now, step) for key, value in named.items() if self.logged.get(key, -1) < step]
        for i in range(0, len(items), BATCH * 10):  # log_batch takes 1000 metrics
            self.client.log_batch(self.run_id, metrics=items[i:i + BATCH * 10])
        self.logged.update({item.key: step for item in items})

    def log(self, step: int, row: dict[str, Any]) -> None:
        self._metrics(numbers(row, self.run.hparams), step)

    def finish(self, hparams: dict[str, Any], summary: dict[str, Any]) -> None:
        if self.run_id is None:
            return
        best = {k: v for k, v in summary.items() if k.startswith("best_") and isinstance(v, (int, float))}
        if best and isinstance(summary.get("best_epoch"), int):
            self._metrics(best, max(self.logged.values(), default=0))  # at the run's last step
        for key in ("monitor", "monitor_mode"):
            if isinstance(summary.get(key), str):
                self.client.set_tag(self.run_id, f"modelspec.{key}", summary[key])
        # `finish` is called from the runner's `finally`: an exception on its way out is a run that
        # ended early (it failed or was stopped: its run.json says which; a resume sets it running).
        self.client.set_terminated(self.run_id, "FINISHED" if sys.exc_info()[1] is None else "KILLED")

    def artefacts(self, paths: list[Path]) -> None:
        if self.run_id is None:
            return
        for path in paths:
            if path.is_dir():
                self.client.log_artifacts(self.run_id, str(path), artifact_path=path.name)
            elif path.is_file():
                self.client.log_artifact(self.run_id, str(path))
