"""torchvision: a torchvision classification model by name, as one layer.

Whole (its head resized to `num_classes`) or `features_only` (without its last linear layer, so the
spec adds its own head). Weights: none (default), a local file (read with weights_only=True) or a
torchvision weights name (downloaded into torch's cache when online). Shapes and parameter counts
come from the meta device, like every layer's: validate never builds the real model.
"""

from __future__ import annotations

import inspect
import urllib.error
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import Field, field_validator, model_validator

from ...errors import SpecError, did_you_mean
from ...fileio import safe_load
from .._torch import nn, torch
from ..base import PositiveInt
from .base import ExportExample, LayerSpec, Shape, fmt_shape

KwargValue = bool | int | float | str | list[int] | list[float] | None
# Arguments modelspec sets itself: the head size and the weights have their own keys.
_OWN = ("weights", "progress", "num_classes")
_FILE_SUFFIXES = (".pt", ".pth", ".bin")


def _models():
    import torchvision.models  # imported where used: it takes a second

    return torchvision.models


def classification_models() -> list[str]:
    models = _models()
    return models.list_models(module=models)


def _is_file(weights: str) -> bool:
    return "/" in weights or "\\" in weights or weights.lower().endswith(_FILE_SUFFIXES)


class TorchVision(LayerSpec):
    """A torchvision classification model by name (resnet18, vgg16, ...) as one layer, built by its
    torchvision.models builder; its head is sized to num_classes, or dropped with features_only."""

    type: Literal["torchvision"] = "torchvision"
    name: str
    """The torchvision model: resnet18, vgg16, ... (torchvision.models.list_models()); also the node's name in
    a graph."""
    num_classes: PositiveInt | Literal["num_classes"] = "num_classes"
    """The size of the classification head: a number, or `num_classes` (the default) for the data set's class
    count."""
    features_only: bool = False
    """Drop the last linear layer, so the output is the pooled features (default false)."""
    weights: Optional[str] = None
    """Omitted: random initialisation. A file path (.pt, .pth, .bin): a state dict, loaded with weights_only.
    A name: IMAGENET1K_V1, DEFAULT or ResNet18_Weights.IMAGENET1K_V1 (downloaded when not in torch's
    cache)."""
    kwargs: dict[str, KwargValue] = Field(default_factory=dict)
    """The model builder's other arguments (e.g. dropout), passed as written."""

    examples = (
        ({"name": "resnet18", "num_classes": 5}, (3, 32, 32)),
        ({"name": "resnet18", "features_only": True, "kwargs": {"zero_init_residual": True}}, (3, 32, 32)),
    )
    export_example = ExportExample((3, 32, 32), ({"torchvision": {"name": "resnet18"}},), head=False)

    @field_validator("name")
    @classmethod
    def _known_model(cls, name: str) -> str:
        names = classification_models()
        if name not in names:
            raise ValueError(
                f"'{name}' is not a torchvision classification model; "
                + (did_you_mean(name, names) or "see torchvision.models.list_models()")
            )
        return name

    @model_validator(mode="after")
    def _known_arguments(self):
        own = [key for key in self.kwargs if key in _OWN]
        if own:
            raise ValueError(f"kwargs may not set {', '.join(own)}: use the layer's own keys (num_classes, weights)")
        if self.weights is not None and not _is_file(self.weights):
            self._weights_enum()
        return self

    @property
    def label(self) -> str:
        return f"torchvision {self.name}" + (" (features)" if self.features_only else "")

    def with_num_classes(self, num_classes: int) -> LayerSpec:
        if self.num_classes == "num_classes":
            return self.model_copy(update={"num_classes": num_classes})
        return self

    def _weights_enum(self) -> Any:
        models = _models()
        enum = models.get_model_weights(self.name)
        key = self.weights.split(".", 1)[1] if self.weights.startswith(enum.__name__ + ".") else self.weights
        if key not in enum.__members__:
            raise ValueError(
                f"'{self.weights}' names no weights of {self.name}; "
                + (did_you_mean(key, enum.__members__) or "it has " + ", ".join(enum.__members__))
            )
        return enum[key]

    def _arguments(self) -> list[str]:
        builder = _models().get_model_builder(self.name)
        signature = inspect.signature(builder)
        variadic = (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
        names = [p for p, param in signature.parameters.items() if param.kind not in variadic]
        model_class = signature.return_annotation
        if inspect.isclass(model_class):
            names += [p for p in inspect.signature(model_class.__init__).parameters if p != "self"]
        return [n for n in dict.fromkeys(names) if n not in _OWN and n not in ("args", "kwargs")]

    def _construct(self, num_classes: int | None) -> nn.Module:
        builder = _models().get_model_builder(self.name)
        extra = {} if num_classes is None else {"num_classes": num_classes}
        try:
            return builder(**self.kwargs, **extra)
        except (TypeError, ValueError, AttributeError) as exc:
            bad = [k for k in self.kwargs if k not in self._arguments()]
            hint = did_you_mean(bad[0], self._arguments()) if bad else ""
            raise SpecError(
                f"{self.name} does not take these arguments: {str(exc).splitlines()[0][:200]}",
                path=("kwargs",),
                hint=hint or "its arguments: " + ", ".join(self._arguments()),
            ) from None

    def _pretrained(self) -> dict[str, torch.Tensor]:
        """The weights' state dict (never on the meta device: shapes need no values)."""
        if _is_file(self.weights):
            state = safe_load(Path(self.weights).expanduser(), "weights file")
            state = state.get("state_dict", state) if isinstance(state, dict) else state
            if not isinstance(state, dict):
                raise SpecError(f"{self.weights} holds no state dict", path=("weights",))
            return state
        weights = self._weights_enum()
        try:
            return weights.get_state_dict(progress=False)
        except (urllib.error.URLError, OSError) as exc:
            raise SpecError(
                f"cannot download the weights {weights} for {self.name}: {exc}"[:300],
                path=("weights",),
                hint=f"go online once (they are cached in {torch.hub.get_dir()}/checkpoints), "
                "or give a local weights file",
            ) from None

    def _module(self) -> nn.Module:
        if self.weights is None and not self.features_only:
            return self._construct(self._num_classes())
        model = self._construct(None)  # the builder's own head, which pretrained weights fit
        if self.weights is not None and torch.empty(0).device.type != "meta":
            try:
                model.load_state_dict(self._pretrained())
            except RuntimeError as exc:
                raise SpecError(
                    f"the weights {self.weights} do not fit {self.name}: {str(exc).splitlines()[0][:200]}",
                    path=("weights",),
                    hint=f"use weights saved from torchvision's {self.name} (the whole model's state dict)",
                ) from None
        name, head = _last_linear(model, self.name)
        if self.features_only:
            model.set_submodule(name, nn.Identity())
        elif head.out_features != self._num_classes():
            model.set_submodule(name, nn.Linear(head.in_features, self._num_classes(), bias=head.bias is not None))
        return model

    def _num_classes(self) -> int:
        if not isinstance(self.num_classes, int):
            raise SpecError(
                "num_classes is not resolved: the class count is unknown",
                path=("num_classes",),
                hint="give data.num_classes, or num_classes here",
            )
        return self.num_classes

    def output_shape(self, input_shape: Shape) -> Shape:
        with torch.device("meta"):
            model = self._module().eval()
            try:
                out = model(torch.empty(2, *input_shape))
            except (RuntimeError, ValueError) as exc:
                raise SpecError(
                    f"{self.name} cannot take an input of {fmt_shape(input_shape)}: {str(exc).splitlines()[0][:200]}",
                    hint="torchvision's classifiers take (3, H, W) images; resize small images "
                    "(a `resize` transform) or add a conv that makes 3 channels",
                ) from None
        return tuple(out.shape[1:])

    def build(self, input_shape: Shape) -> nn.Module:
        return self._module()


def _last_linear(model: nn.Module, name: str) -> tuple[str, nn.Linear]:
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise SpecError(
            f"{name} has no linear head modelspec can resize",
            path=("name",),
            hint="pick a model whose classifier ends in a linear layer (resnet, vgg, efficientnet, ...)",
        )
    return linears[-1]
