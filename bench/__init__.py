"""RegBench: benchmark robustness regularizers of image classifiers.

Layers (imports point down only; import-linter contracts in pyproject.toml, run by the tests):
  bench.core     config, data, models, the Record type, device helpers, the generic Registry
  regularizers / attacks / leaderboard   each imports the core only
  bench.engine   the Trainer (core + regularizers)
  bench.app      pipelines, surrogate provisioning, sweeps, reproduce, estimate, RobustBench flow, the API
  bench.cli      `python -m bench`: parses arguments and calls bench.app

The Python API (`bench.run`, `bench.evaluate`, `bench.load_model`, `bench.sweep`, `bench.leaderboard`,
`bench.SweepSpec`, `bench.RunConfig`, `bench.build_config`, `bench.Record`) is imported on first use, so
`import bench` (and `python -m bench --help`) stays instant.
"""
__version__ = "0.1.0"

_API = {"run": "bench.app.api", "evaluate": "bench.app.api", "load_model": "bench.app.api",
        "sweep": "bench.app.api", "leaderboard": "bench.app.api", "SweepSpec": "bench.app.sweep",
        "RunConfig": "bench.core.config", "build_config": "bench.core.config", "Record": "bench.core.records"}


def __getattr__(name):
    if name in _API:
        import importlib
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")


__all__ = ["__version__", *_API]
