"""One small registry class for every registry of the harness (models, datasets, regularizers, suite
tests, suites), in the spirit of lm-evaluation-harness's `Registry` and timm's `register_model`.

A registry maps names to objects and remembers where each came from (`builtin`, `plugin:<module>` for
`--plugin module`, `entry-point:<distribution>` for an installed package). It is a read-only mapping
(`name in R`, `R[name]`, iteration over names), registers by decorator at import, lists names with
shell wildcards, and loads its entry-point group lazily on the first lookup, so a third-party package
can ship a regularizer, an attack (suite test) or a suite by declaring, in its pyproject:

    [project.entry-points."regbench.tests"]
    my_attack = "my_pkg.attacks:MyAttack"

An unknown name is a `UnknownName` error (a KeyError and a ValueError) of one line listing the valid
names. An entry point or plugin that fails to import is recorded in `plugin_errors()`; the rest work.
"""
from __future__ import annotations

import contextlib
import contextvars
import fnmatch
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Callable, Iterator

_SOURCE: contextvars.ContextVar[str] = contextvars.ContextVar("regbench_registry_source", default="builtin")


class UnknownName(KeyError, ValueError):
    """A name no registry entry has; the message lists the valid names."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


@dataclass
class Entry:
    name: str
    obj: Any
    source: str  # "builtin" | "plugin:<module>" | "entry-point:<distribution>"

    @property
    def cls(self):  # the registered class (regularizers, tests)
        return self.obj


@contextlib.contextmanager
def registering_as(source: str):
    """Entries registered inside this block record `source` as their provenance."""
    token = _SOURCE.set(source)
    try:
        yield
    finally:
        _SOURCE.reset(token)


class Registry(Mapping):
    """name -> object with provenance, wildcard listing and an optional entry-point group.

    `check(name, obj)` raises TypeError for an object of the wrong kind; `on_register(name, obj)` runs
    for every accepted entry (e.g. sets a class's `name`); `label` words the unknown-name error
    (`unknown <kind> 'x'; <label>: a, b, c`)."""

    def __init__(self, kind: str, entry_point_group: str | None = None, *,
                 check: Callable[[str, Any], None] | None = None,
                 on_register: Callable[[str, Any], None] | None = None, label: str = "valid names"):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._check = check
        self._on_register = on_register
        self._label = label
        self._entries: dict[str, Entry] = {}
        self._errors: dict[str, str] = {}
        self._eps_loaded = entry_point_group is None

    # ------------------------------------------------------------------ registering
    def register(self, name: str, obj: Any = None, *, replace: bool = False):
        """`@R.register("name")` on a class or function, or `R.register("name", obj)`. Registering another
        object under a taken name is an error unless `replace` (re-importing a module is not)."""
        if obj is None:
            def deco(o):
                self._add(name, o, replace)
                return o
            return deco
        self._add(name, obj, replace)
        return obj

    def _add(self, name: str, obj: Any, replace: bool = False) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a {self.kind} needs a non-empty name, got {name!r}")
        if self._check is not None:
            self._check(name, obj)
        prev = self._entries.get(name)
        if prev is not None and not replace and prev.obj is not obj and _qualname(prev.obj) != _qualname(obj):
            raise ValueError(f"{self.kind} {name!r} is already registered by {prev.source} ({prev.obj!r})")
        if self._on_register is not None:
            self._on_register(name, obj)
        source = prev.source if (prev is not None and _SOURCE.get() == "builtin") else _SOURCE.get()
        self._entries[name] = Entry(name, obj, source)

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    # ------------------------------------------------------------------ plugins and entry points
    def load_entry_points(self) -> None:
        if self._eps_loaded:
            return
        self._eps_loaded = True
        try:
            eps = metadata.entry_points(group=self.entry_point_group)
        except Exception as e:  # noqa: BLE001 - broken metadata of some other package
            self._errors["<entry points>"] = repr(e)
            return
        for ep in eps:
            dist = getattr(getattr(ep, "dist", None), "name", None) or ep.value
            try:
                with registering_as(f"entry-point:{dist}"):
                    obj = ep.load()
                    if ep.name not in self._entries:
                        self._add(ep.name, obj)
            except Exception as e:  # noqa: BLE001 - one broken plugin must not take the others down
                self._errors[f"{ep.name} ({ep.value})"] = f"{type(e).__name__}: {e}"

    def load_plugin(self, module: str, strict: bool = True) -> list[str]:
        """Import a module whose import registers entries; returns the names it added here."""
        self.load_entry_points()
        before = set(self._entries)
        try:
            with registering_as(f"plugin:{module}"):
                importlib.import_module(module)
        except Exception as e:  # noqa: BLE001
            self._errors[module] = f"{type(e).__name__}: {e}"
            if strict:
                raise ImportError(f"plugin module {module!r} failed to import: {type(e).__name__}: {e}") from e
            return []
        return sorted(set(self._entries) - before)

    def plugin_errors(self) -> dict[str, str]:
        self.load_entry_points()
        return dict(self._errors)

    # ------------------------------------------------------------------ looking up
    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell wildcard pattern, sorted."""
        self.load_entry_points()
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def entries(self, pattern: str = "*") -> list[Entry]:
        return [self._entries[n] for n in self.names(pattern)]

    def source(self, name: str) -> str:
        return self._entry(name).source

    def unknown(self, name) -> UnknownName:
        return UnknownName(f"unknown {self.kind} {name!r}; {self._label}: {', '.join(self.names()) or '(none)'}")

    def _entry(self, name: str) -> Entry:
        self.load_entry_points()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise self.unknown(name) from None

    def __getitem__(self, name: str):
        return self._entry(name).obj

    def get(self, name: str, *default):
        """The object registered as `name`; an `UnknownName` error listing the valid names, unless a
        default is given (then the default, as `dict.get`)."""
        if default:
            self.load_entry_points()
            e = self._entries.get(name)
            return default[0] if e is None else e.obj
        return self[name]

    def __contains__(self, name) -> bool:
        self.load_entry_points()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self.load_entry_points()
        return len(self._entries)

    def __repr__(self):
        return f"Registry({self.kind!r}, {len(self._entries)} entries, entry points {self.entry_point_group!r})"


def _qualname(obj) -> str:
    return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', repr(obj))}"
