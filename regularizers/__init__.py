"""Regularizer plugins: `register`, `get`, `available`, and the built-in entries."""
from .base import Regularizer, RegBatch, RegContext
from .registry import (ENTRY_POINT_GROUP, UnknownRegularizer, available, entries, get, get_class,
                       load_plugin, plugin_errors, register)
from . import none  # noqa: F401  (registers "none")

try:  # the similarity family (pixel_sim, pixel_th, neural_pred)
    from . import similarity  # noqa: F401
except ImportError as _e:  # pragma: no cover - only while the module is absent
    if "similarity" not in str(_e):
        raise

__all__ = ["Regularizer", "RegBatch", "RegContext", "register", "get", "get_class", "available",
           "entries", "load_plugin", "plugin_errors", "UnknownRegularizer", "ENTRY_POINT_GROUP"]
