"""Use a trained model: `open_model` (a run folder or an export folder, eager or onnxruntime), raw
inputs through the stored preprocessing (`inputs`), outputs read by the task (`readout`), and
`evaluate_split` for metrics on labelled data."""

from .model import Predictor, open_model

__all__ = ["Predictor", "open_model"]
