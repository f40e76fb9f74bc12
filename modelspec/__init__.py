"""modelspec: one YAML file describes a network, its data, its training and its grid; modelspec
validates it, trains every run, exports and predicts.

The commands are also functions (see `modelspec.api`)::

    import modelspec

    loaded = modelspec.load_spec("specs/fashion_bn.yaml", set=["train.epochs=2"])
    model = modelspec.build_model(loaded)        # the first run's network, untrained
    result = modelspec.run_grid(loaded)         # train the grid -> GridResult (folder, outcomes, rows)
    report = modelspec.export_run(result.folder, best=True)
    rows = modelspec.predict_files(report.out_dir, ["shoe.png"])
    scores = modelspec.evaluate_run(result.folder, best=True)

They are imported on first use: `import modelspec` stays cheap (no torch), and the package's own
modules never import this API (it sits on top of everything, beside the CLI).
"""

from __future__ import annotations

from typing import Any

__all__ = ["RunError", "SpecError", "build_model", "evaluate_run", "export_run", "load_spec", "loads_spec",
           "predict_files", "run_grid"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'modelspec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
