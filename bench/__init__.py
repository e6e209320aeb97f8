"""RegBench orchestration: config and presets, data, models, the budgeted trainer, run records, CLI."""
__version__ = "0.1.0"
