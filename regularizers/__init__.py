"""Regularizer plugins: `register`, `get`, `available`, and the built-in entries."""
from .base import Regularizer, RegBatch, RegContext, Step, StepModel
from .registry import (ENTRY_POINT_GROUP, REGULARIZERS, UnknownRegularizer, available, entries, get, get_class,
                       load_plugin, plugin_errors, register)
from . import none  # noqa: F401  (registers "none")
from . import similarity  # noqa: F401  (registers pixel_sim, pixel_th, neural_pred)
from . import baselines  # noqa: F401  (registers noise_aug, fgsm_at)

__all__ = ["REGULARIZERS", "Regularizer", "RegBatch", "RegContext", "Step", "StepModel", "register", "get", "get_class",
           "available",
           "entries", "load_plugin", "plugin_errors", "UnknownRegularizer", "ENTRY_POINT_GROUP"]
