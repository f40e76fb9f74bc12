"""`modelspec serve`: a trained model behind an HTTP API, fed through the preprocessing it was trained
with. `create_app(predictor, options)` builds the FastAPI app (`app`); what /predict takes is built
from the model's own inputs (`requests`); concurrent requests share model calls (`batching`).

FastAPI and uvicorn are the `serve` extra: only this package and the command import them."""

from .app import ServeOptions, create_app

__all__ = ["ServeOptions", "create_app"]
