"""Regularizer registry: `@register("name")` at import (timm style) plus the entry-point group
`regbench.regularizers` for third-party packages, and `--plugin module` for local modules.

A plugin that fails to import is recorded by name in `plugin_errors()`; the built-ins keep working.
"""
from __future__ import annotations

import fnmatch
import importlib
from dataclasses import dataclass
from importlib import metadata

ENTRY_POINT_GROUP = "regbench.regularizers"


@dataclass
class Entry:
    name: str
    cls: type
    source: str  # "builtin", "plugin:<module>", "entry-point:<dist>"


_REGISTRY: dict[str, Entry] = {}
_PLUGIN_ERRORS: dict[str, str] = {}
_entry_points_loaded = False
_current_source = "builtin"


class UnknownRegularizer(KeyError):
    def __str__(self):
        return self.args[0]


def register(name: str):
    """Class decorator: `@regularizers.register("pixel_sim")`."""
    def deco(cls):
        from .base import Regularizer
        if not (isinstance(cls, type) and issubclass(cls, Regularizer)):
            raise TypeError(f"@register({name!r}) expects a Regularizer subclass, got {cls!r}")
        prev = _REGISTRY.get(name)
        if prev is not None and prev.cls is not cls and prev.cls.__qualname__ != cls.__qualname__:
            raise ValueError(f"regularizer {name!r} is already registered by {prev.source} ({prev.cls})")
        cls.name = name
        _REGISTRY[name] = Entry(name, cls, _current_source)
        return cls
    return deco


def _load_entry_points() -> None:
    global _entry_points_loaded, _current_source
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    try:
        eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception as e:  # pragma: no cover - broken metadata
        _PLUGIN_ERRORS["<entry points>"] = repr(e)
        return
    for ep in eps:
        dist = getattr(getattr(ep, "dist", None), "name", None) or ep.value
        before = set(_REGISTRY)
        _current_source = f"entry-point:{dist}"
        try:
            obj = ep.load()
            from .base import Regularizer
            if isinstance(obj, type) and issubclass(obj, Regularizer) and ep.name not in _REGISTRY:
                register(ep.name)(obj)
        except Exception as e:
            _PLUGIN_ERRORS[f"{ep.name} ({ep.value})"] = f"{type(e).__name__}: {e}"
        finally:
            _current_source = "builtin"
        for n in set(_REGISTRY) - before:
            _REGISTRY[n].source = f"entry-point:{dist}"


def load_plugin(module: str, strict: bool = True) -> list[str]:
    """Import a module whose import registers regularizers; returns the names it added."""
    global _current_source
    before = set(_REGISTRY)
    _current_source = f"plugin:{module}"
    try:
        importlib.import_module(module)
    except Exception as e:
        _PLUGIN_ERRORS[module] = f"{type(e).__name__}: {e}"
        if strict:
            raise ImportError(f"plugin module {module!r} failed to import: {type(e).__name__}: {e}") from e
        return []
    finally:
        _current_source = "builtin"
    return sorted(set(_REGISTRY) - before)


def available(pattern: str = "*") -> list[str]:
    """Registered names matching a wildcard pattern."""
    _load_entry_points()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def entries() -> list[Entry]:
    _load_entry_points()
    return [_REGISTRY[n] for n in sorted(_REGISTRY)]


def plugin_errors() -> dict[str, str]:
    _load_entry_points()
    return dict(_PLUGIN_ERRORS)


def get_class(name: str) -> type:
    _load_entry_points()
    if name not in _REGISTRY:
        raise UnknownRegularizer(f"unknown regularizer {name!r}; valid names: {', '.join(available())}")
    return _REGISTRY[name].cls


def get(name: str, **hp):
    """Instantiate a registered regularizer with hyper-parameters."""
    return get_class(name)(**hp)
