"""The `Record` type: one run folder, its files, and the rules about them.

    <out>/<regularizer>-<dataset>-s<seed>-<config hash>/   (zoo models: robustbench-<name>-...-<key>)
        config.json       the header: full resolved config, versions, device, git commit, budget
        model.pt          plain state_dict of the selected model (loaded with weights_only=True)
        regularizer.pt    the regularizer's state (layer weights, running means), if any
        checkpoint.pt     last training checkpoint (removed once the run is done)
        train_log.jsonl   one JSON line per logged step / epoch
        metrics.json      {"train": training summary, "suite": {test: result}, "suite_name", "suite_flags"}

Every writer and reader goes through this class: the trainer writes the header, the log, the weights
and the training summary; the suite puts one result per test; the leaderboard, sweeps and the RobustBench
flow read. Files are written atomically (`bench.core.store`); merges into metrics.json hold the folder's
lock. `is_current` is the one rule for "this test's result is already in the record and still valid".
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import torch.nn as nn

from bench.core import store
from bench.core.config import RunConfig, validate

_HASH_RE = re.compile(r"[0-9a-f]{12}")
CONFIG, METRICS, MODEL, REGULARIZER, CHECKPOINT, LOG = (
    "config.json", "metrics.json", "model.pt", "regularizer.pt", "checkpoint.pt", "train_log.jsonl")
# config.json's `out`: the results folder, written relative to the record. A record always lies directly
# inside its results folder, so this is its parent, and a record carries no path of the machine that made it
# (`out` is outside the config hash, so the hash is unchanged). Readers take the record's actual parent.
RECORD_OUT = ".."


def legacy_defaults(cfg: dict) -> dict:
    """A stored config with the values its writer meant by leaving a field out: records written before the
    `step_path` option were all trained on the plain path (no record of this project was made on a GPU), so
    a missing `step_path` reads as `plain`, on any machine (unset would resolve by the reading machine)."""
    return cfg if "step_path" in cfg else {**cfg, "step_path": "plain"}


def portable_header(header: dict) -> dict:
    """`header` with `config.out` set to `RECORD_OUT` (nothing else changes); other headers as they are.
    What `Record.write_header` stores, and what scripts/migrate_records.py applies to old records."""
    cfg = header.get("config") if isinstance(header, dict) else None
    if not isinstance(cfg, dict) or "out" not in cfg or cfg["out"] == RECORD_OUT:
        return header
    return {**header, "config": {**cfg, "out": RECORD_OUT}}


def _data_files(files, base: Path, relative: bool):
    """config.json's `data_files` (array files of `npz:` datasets, outside the hash): written relative to the
    record folder `base`, as `out`, so a record holds no path of the machine that made it; read back against the
    folder the record lies in now."""
    if not isinstance(files, dict):
        return files
    base = base.expanduser().resolve()
    if relative:
        return {k: os.path.relpath(Path(v).expanduser().resolve(), base) for k, v in files.items()}
    return {k: str((base / Path(v).expanduser()).resolve()) for k, v in files.items()}


class Record:
    """A run folder (it need not exist yet)."""

    def __init__(self, path):
        self.path = Path(path)

    @classmethod
    def for_config(cls, cfg: RunConfig) -> "Record":
        """The record a config's run lives in: `<out>/<reg>-<dataset>-s<seed>-<hash>`."""
        return cls(store.run_dir_for(cfg))

    @classmethod
    def in_folder(cls, out, name: str) -> "Record":
        """A record named `name` (made file-name safe) directly inside the results folder `out`: how records
        that no RunConfig hash names are placed (RobustBench zoo models)."""
        out = Path(out).expanduser().resolve()
        path = out / store.safe_slug(name, max_len=200)
        if path.parent != out:  # cannot happen with a slug; a last guard
            raise ValueError(f"record name {name!r} would leave the results folder {out}")
        return cls(path)

    @classmethod
    def find(cls, *roots) -> list["Record"]:
        """Every record (a folder with a config.json) under the given roots."""
        return [cls(p) for p in store.find_records(*roots)]

    def __repr__(self):
        return f"Record({str(self.path)!r})"

    def __eq__(self, other):
        return isinstance(other, Record) and self.path.resolve() == other.path.resolve()

    def __hash__(self):
        return hash(str(self.path.resolve()))

    # ------------------------------------------------------------------ files
    @property
    def name(self) -> str:
        return self.path.name

    @property
    def model_path(self) -> Path:
        return self.path / MODEL

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT

    @property
    def log_path(self) -> Path:
        return self.path / LOG

    # ------------------------------------------------------------------ reading
    def header(self) -> dict | None:
        """config.json (None when absent; a damaged file raises `DamagedRecord` naming it)."""
        return store.read_json(self.path / CONFIG)

    def config(self) -> RunConfig:
        """The record's RunConfig, every field checked (`bench.core.config.validate`): a config.json of the
        wrong shape or with a value out of its domain (`width: "abc"`) is a `DamagedRecord` naming it. Its
        `out` is the folder the record lies in now (config.json keeps it relative, older records an absolute
        path of the machine that trained them)."""
        h = self.header()
        if h is None:
            raise FileNotFoundError(f"no config.json in {self.path}: not a RegBench run directory")
        cfg_d = h.get("config") if isinstance(h, dict) else None
        if not isinstance(cfg_d, dict):
            raise store.DamagedRecord(self.path / CONFIG, "no \"config\" object")
        try:
            cfg = self._config_of(h)
            validate(cfg)
        except (TypeError, ValueError) as e:
            raise store.DamagedRecord(self.path / CONFIG, " ".join(str(e).split())[:200]) from None
        return cfg

    def _config_of(self, h: dict) -> RunConfig:
        return RunConfig.from_dict({**legacy_defaults(h["config"]), "out": str(self.path.expanduser().resolve().parent),
                                    "data_files": _data_files(h["config"].get("data_files"), self.path, False)})

    def hash_problem(self) -> str | None:
        """Why config.json does not match the record's hash, or None when it does. The hash is in the folder's
        name (`...-<hash>`) and in config.json (`hash`); both must be the hash of the config as it stands (for a
        zoo model's record: of the config and its checkpoints' SHA-256, as `bench.app.robustbench` names it)."""
        import hashlib
        h = self.header()
        if not isinstance(h, dict) or not isinstance(h.get("config"), dict):
            return "config.json has no \"config\" object"
        try:
            actual = RunConfig.from_dict(legacy_defaults(h["config"])).hash()
        except TypeError as e:
            return f"config.json does not describe a run ({e})"
        ext = h.get("external")
        if isinstance(ext, dict) and isinstance(ext.get("checkpoint_sha256"), str):
            actual = hashlib.sha256((actual + ext["checkpoint_sha256"]).encode()).hexdigest()[:12]
        stored = h.get("hash")
        if stored is not None and stored != actual:
            return f"the config hashes to {actual}, config.json says {stored}"
        tail = self.path.name.rsplit("-", 1)[-1]
        if _HASH_RE.fullmatch(tail) and tail != actual:
            return f"the config hashes to {actual}, the folder name says {tail}"
        return None

    def check_hash(self) -> None:
        """Refuse a record whose config.json was edited after training (it would be evaluated, and its results
        replaced, under a protocol other than the one its hash names)."""
        why = self.hash_problem()
        if why is not None:
            raise store.DamagedRecord(self.path / CONFIG, f"does not match the record's hash: {why} (edited after "
                                                          "training?); restore it, or train that config as its own run")

    def metrics(self) -> dict:
        return store.read_json(self.path / METRICS, {}) or {}

    def training(self) -> dict:
        """The training summary (`metrics.json: train`), {} before training ends."""
        return self.metrics().get("train") or {}

    def results(self) -> dict:
        """Suite results by test name (`metrics.json: suite`)."""
        return self.metrics().get("suite") or {}

    def finished_training(self) -> bool:
        """Training ended and did not fail (the weights may be absent: studies commit metrics only)."""
        t = self.training()
        return bool(t.get("done")) and not t.get("failed")

    def is_trained(self) -> bool:
        """Finished training and has its weights."""
        return self.model_path.is_file() and self.finished_training()

    def n_test(self) -> int | None:
        """How many test images the record's suite sees (from the header)."""
        return ((self.header() or {}).get("data") or {}).get("n_test")

    @staticmethod
    def result_is_current(prev: dict | None, protocol: dict, seed: int, n_examples: int | None) -> bool:
        """THE rule for reusing a test result: same protocol (test version and parameters as resolved for
        the dataset), same suite seed, same number of images, and the test did not skip."""
        return bool(prev) and prev.get("protocol") == protocol and prev.get("seed") == seed \
            and prev.get("n_examples") == n_examples \
            and not ((prev.get("result") or {}).get("details") or {}).get("skipped")

    def is_current(self, test, dataset: str | None, seed: int, n_examples: int | None = None) -> bool:
        """`test`'s result in this record is current (`result_is_current`); `n_examples` defaults to the
        record's own test-set size."""
        return self.all_current([test], dataset, seed, n_examples)

    def all_current(self, tests, dataset: str | None, seed: int, n_examples: int | None = None) -> bool:
        """Every test's result is current (the record's files read once)."""
        n = self.n_test() if n_examples is None else n_examples
        results = self.results()
        return all(self.result_is_current(results.get(t.name), t.protocol(dataset), seed, n) for t in tests)

    # ------------------------------------------------------------------ writing
    def write_header(self, header: dict) -> None:
        header = portable_header(header)
        cfg = header.get("config") if isinstance(header, dict) else None
        if isinstance(cfg, dict) and isinstance(cfg.get("data_files"), dict):
            header = {**header, "config": {**cfg, "data_files": _data_files(cfg["data_files"], self.path, True)}}
        store.atomic_write_json(self.path / CONFIG, header)

    def merge(self, updates: dict) -> dict:
        """Merge top-level keys into metrics.json atomically under the folder's lock."""
        return store.merge_metrics(self.path, updates)

    def put_result(self, test_name: str, result: dict, suite_name: str | None = None) -> None:
        """Store one suite test's result (atomic, under the folder's lock)."""
        with store.locked(self.path):
            m = self.metrics()
            m.setdefault("suite", {})[test_name] = result
            if suite_name is not None:
                m["suite_name"] = suite_name
            store.atomic_write_json(self.path / METRICS, m)

    def mark_failed(self, message: str, **extra) -> None:
        """Leave a record that says it failed (never `done`), with the reason."""
        self.merge({"train": {"done": False, "failed": True, "error": message, **extra}})

    def append_log(self, entry: dict) -> None:
        store.append_log(self.log_path, entry)

    def clear(self) -> None:
        """Remove what training wrote (a forced retrain starts from nothing)."""
        for name in (MODEL, REGULARIZER, CHECKPOINT, METRICS, LOG):
            (self.path / name).unlink(missing_ok=True)

    def save_weights(self, model_state: dict, regularizer_state: dict | None = None) -> None:
        store.atomic_torch_save(self.model_path, {k: v.detach().cpu() for k, v in model_state.items()})
        if regularizer_state:
            store.atomic_torch_save(self.path / REGULARIZER,
                                    {k: v.detach().cpu() for k, v in regularizer_state.items()})

    def lock(self):
        """The metrics-merge lock of this folder (a context manager)."""
        return store.locked(self.path)

    def run_lock(self, log=None):
        """The whole-run lock (train + evaluate; re-entrant within a process)."""
        return store.run_lock(self.path, log=log)

    # ------------------------------------------------------------------ weights
    def damaged_hint(self) -> str:
        return (f"retrain with `python -m bench run ... --force` (same arguments), or move the folder {self.path} "
                "away")

    def check_model_file(self) -> None:
        """A finished record's model.pt must load (weights_only): else a one-line error with the fix."""
        try:
            store.load_state(self.model_path)
        except store.CorruptCheckpoint as e:
            raise store.CorruptCheckpoint(f"{e}; {self.damaged_hint()}") from None

    def load_model(self, device="cpu") -> tuple[RunConfig, nn.Module]:
        """(config, model in eval mode) of a finished record; the weights load with weights_only=True."""
        from bench.core.models import model_from_config
        h = self.header()
        if h is None:
            raise FileNotFoundError(f"no config.json in {self.path}: not a RegBench run directory")
        cfg = self._config_of(h)
        m = h["model"]
        model = model_from_config(cfg, m["channels"], m["num_classes"])
        try:
            state = store.load_state(self.model_path)
        except store.CorruptCheckpoint as e:
            raise store.CorruptCheckpoint(f"{e}; {self.damaged_hint()}") from None
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise store.CorruptCheckpoint(f"{self.model_path} does not fit the record's model "
                                          f"({str(e).splitlines()[0][:160]}); {self.damaged_hint()}") from None
        return cfg, model.to(device).eval()


def as_record(target) -> Record:
    """A Record from a Record or a path."""
    return target if isinstance(target, Record) else Record(target)
