"""The export and tracking sections."""

from __future__ import annotations

import re
from typing import Annotated, Literal, Optional, Union

from pydantic import AfterValidator, Field, create_model, field_validator

from ..errors import did_you_mean
from ._forms import spec_error
from .base import RESUME_SAFE, PositiveInt, SpecModel

_FOLDER_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def _one_folder(name: str) -> str:
    """A spec's name becomes a folder under tracking.dir: one path component, never `.` or `..`."""
    if not _FOLDER_NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(
            f"{name!r} cannot name a folder: a name is letters, digits and _ . - (not '.' or '..'), "
            "so that runs land in <tracking.dir>/<name>/"
        )
    return name


FolderName = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_one_folder)]

ExportFormat = Literal["torchscript", "onnx", "torch_export"]


class ExportSpec(SpecModel):
    """What `modelspec export` (and `after_run`) writes: the formats, each verified against the eager
    model on batch sizes 1 and verify_batch_size."""

    # TorchScript only on request: this torch deprecates it (torch.jit.script, save and load each warn).
    formats: list[ExportFormat] = Field(default_factory=lambda: ["torch_export", "onnx"])
    """The formats to write: `torch_export` (PyTorch's recommended .pt2), `onnx` and `torchscript`;
    default torch_export and onnx."""
    opset: Optional[PositiveInt] = None
    """The ONNX opset version; omitted, the exporter's recommended one."""
    atol: float = Field(1e-4, gt=0)
    """Absolute tolerance when an export's outputs are verified against the eager model, in float32
    (default 1e-4)."""
    rtol: float = Field(1e-3, ge=0)
    """Relative tolerance of that verification (default 1e-3)."""
    after_run: bool = False
    """Export every run of `modelspec run` at its end (default false: run `modelspec export`)."""
    verify_batch_size: PositiveInt = 8
    """The larger batch size the exports are verified on, beside batch size 1 (default 8)."""


class EverySpec(SpecModel):
    """A cadence in epochs: `{every: N}`."""

    every: PositiveInt
    """Epochs between two; the run's last epoch always gets one too."""


class _Tracking(SpecModel):
    """Where runs land and what they report to: `backends` (default TensorBoard) beside the results
    table, which every grid writes; each backend's settings at `tracking.<backend>`."""

    dir: str = "runs"
    """Runs land in `<dir>/<spec name>/<timestamp>/`."""
    backends: Annotated[list[str], RESUME_SAFE] = Field(default_factory=lambda: ["tensorboard"])
    """The tracking backends every run reports to, by name (see the trackers reference); `[]`: none.
    The results table (results.csv, results.json) is always written."""
    histograms: Annotated[Union[bool, EverySpec], RESUME_SAFE] = True
    """Every parameter and its gradient: `true` (after the first epoch that ends 10 s or more after the
    last ones, and after the last epoch of a run that trained 10 s or more), `{every: N}` (and the
    last), or `false`."""
    images: Annotated[Union[bool, EverySpec], RESUME_SAFE] = True
    """The first batch as an image grid (image data), and the confusion matrices as often as `true`
    or `{every: N}` say (as for histograms; `{every: 1}`: each epoch), or `false`; the run folder's
    confusion_matrix.png comes with the last epoch's."""
    graph: Annotated[bool, RESUME_SAFE] = True
    """The model graph, traced once per run (TensorBoard)."""

    @field_validator("backends")
    @classmethod
    def _known_backends(cls, names: list[str]) -> list[str]:
        from ..tracking import TRACKERS

        for index, name in enumerate(names):
            if name not in TRACKERS:
                raise spec_error(f"unknown tracking backend '{name}'", key=(index,),
                                 hint=did_you_mean(name, TRACKERS) or "valid backends: " + ", ".join(TRACKERS))
            if name in names[:index]:
                raise spec_error(f"tracking backend '{name}' is listed twice", key=(index,), hint="remove one")
        return names

    @property
    def histogram_every(self) -> int | Literal["auto"] | None:
        return _every(self.histograms)

    @property
    def image_every(self) -> int | Literal["auto"] | None:
        return _every(self.images)

    def check(self) -> None:
        """A SpecError when a listed backend cannot work here (its package is not installed)."""
        from ..tracking import TRACKERS

        for name in self.backends:
            TRACKERS[name].check(self.options(name))

    def options(self, backend: str) -> Optional[SpecModel]:
        """The settings of `backend` (`tracking.<backend>`), or None where it has none."""
        return getattr(self, backend, None)


def _tracking_spec() -> type[_Tracking]:
    """The tracking section with one settings field per registered backend that has settings."""
    from ..tracking import TRACKERS

    fields = {name: (tracker.Options, Field(default_factory=tracker.Options,
                                            description=f"Settings of the `{name}` backend (used when "
                                                        "`backends` lists it)."))
              for name, tracker in TRACKERS.items() if tracker.Options is not None}
    return create_model("TrackingSpec", __base__=_Tracking, __module__=__name__, __doc__=_Tracking.__doc__, **fields)


TrackingSpec = _tracking_spec()


def _every(setting: bool | EverySpec) -> int | Literal["auto"] | None:
    """Epochs between two; None for `false`, `auto` for `true` (the runner's time-based default)."""
    if setting is False:
        return None
    return setting.every if isinstance(setting, EverySpec) else "auto"
