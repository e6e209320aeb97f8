"""The regularizer registry: `@regularizers.register("name")` at import (timm style), the entry-point
group `regbench.regularizers` for third-party packages, and `--plugin module` for local modules. It
is one `bench.core.registry.Registry`, the class every registry of the harness uses.

A plugin that fails to import is recorded by name in `plugin_errors()`; the built-ins keep working.
"""
from __future__ import annotations

from bench.core.registry import Entry, Registry, UnknownName

ENTRY_POINT_GROUP = "regbench.regularizers"
UnknownRegularizer = UnknownName  # the error of an unknown name (a KeyError and a ValueError)


def _check(name, obj) -> None:
    from .base import Regularizer
    if not (isinstance(obj, type) and issubclass(obj, Regularizer)):
        raise TypeError(f"@register({name!r}) expects a Regularizer subclass, got {obj!r}")


def _set_name(name, cls) -> None:
    cls.name = name


REGULARIZERS = Registry("regularizer", ENTRY_POINT_GROUP, check=_check, on_register=_set_name)

register = REGULARIZERS.register
available = REGULARIZERS.names
entries = REGULARIZERS.entries
load_plugin = REGULARIZERS.load_plugin
plugin_errors = REGULARIZERS.plugin_errors


def get_class(name: str) -> type:
    return REGULARIZERS[name]


def get(name: str, **hp):
    """Instantiate a registered regularizer with hyper-parameters."""
    return get_class(name)(**hp)


__all__ = ["REGULARIZERS", "ENTRY_POINT_GROUP", "Entry", "UnknownRegularizer", "register", "available", "entries",
           "load_plugin", "plugin_errors", "get_class", "get"]
