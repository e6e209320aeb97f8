"""Records carry no path of the machine that made them (issue 21): config.json stores `out` relative to
the record, readers take the folder the record lies in now, and scripts/migrate_records.py turns old
records into that form changing nothing else (idempotent)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.core.config import build_config
from bench.core.records import RECORD_OUT, Record, portable_header
from bench.core.store import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import migrate_records  # noqa: E402


def _old_record(tmp_path, out="/home/someone/results") -> Path:
    """A record folder as older RegBench versions wrote it: the absolute `out` of the machine that trained it."""
    cfg = build_config("tiny", {"out": out})
    run = tmp_path / "elsewhere" / f"none-fashion_mnist-s0-{cfg.hash()}"
    run.mkdir(parents=True)
    header = {"config": cfg.to_dict(), "hash": cfg.hash(), "comparison_key": cfg.comparison_key(),
              "versions": {"torch": "x"}, "note": "Zürich ± 1", "budget": {"steps": 8}}
    (run / "config.json").write_text(json.dumps(header, indent=2, sort_keys=True) + "\n")
    (run / "metrics.json").write_text('{"train": {"steps": 8}}\n')
    return run


def test_header_is_written_with_a_relative_out_and_read_back_as_the_records_folder(tmp_path):
    cfg = build_config("tiny", {"out": str(tmp_path / "results")})
    rec = Record.for_config(cfg)
    rec.path.mkdir(parents=True)
    rec.write_header({"config": cfg.to_dict(), "hash": cfg.hash()})
    stored = json.loads((rec.path / "config.json").read_text())
    assert stored["config"]["out"] == RECORD_OUT == ".." and str(tmp_path) not in (rec.path / "config.json").read_text()
    assert stored["hash"] == cfg.hash()  # `out` is outside the hash
    got = rec.config()
    assert Path(got.out) == (tmp_path / "results").resolve() and got.hash() == cfg.hash()
    assert Record.for_config(got).path.resolve() == rec.path.resolve()  # the same record, found again


def test_portable_header_changes_only_out_and_leaves_other_headers_alone():
    h = {"config": {"out": "/abs/results", "seed": 3}, "hash": "abc"}
    new = portable_header(h)
    assert new == {"config": {"out": "..", "seed": 3}, "hash": "abc"} and h["config"]["out"] == "/abs/results"
    assert portable_header(new) is new  # already relative
    for other in ({"hash": "abc"}, {"config": {"seed": 1}}, {"config": None}):
        assert portable_header(other) is other


def test_migration_changes_only_the_out_line_and_is_idempotent(tmp_path):
    run = _old_record(tmp_path)
    before = (run / "config.json").read_text()
    metrics = (run / "metrics.json").read_bytes()
    assert migrate_records.main([str(tmp_path), "--check"]) == 1 and (run / "config.json").read_text() == before
    assert migrate_records.main([str(tmp_path)]) == 0
    after = (run / "config.json").read_text()
    diff = [(a, b) for a, b in zip(before.splitlines(), after.splitlines()) if a != b]
    assert len(before.splitlines()) == len(after.splitlines())
    assert diff == [('    "out": "/home/someone/results",', '    "out": "..",')]
    assert (run / "metrics.json").read_bytes() == metrics
    assert Path(Record(run).config().out) == run.parent.resolve()  # wherever the record lies now
    assert migrate_records.main([str(tmp_path)]) == 0 and (run / "config.json").read_text() == after
    assert migrate_records.main([str(tmp_path), "--check"]) == 0


def test_migration_names_what_it_cannot_migrate_and_keeps_it(tmp_path, capsys):
    run = _old_record(tmp_path)
    compact = json.dumps(json.loads((run / "config.json").read_text()))  # not the writer's format
    (run / "config.json").write_text(compact)
    bad = tmp_path / "bad-run"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    assert migrate_records.main([str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{run / 'config.json'}: not in the format RegBench writes" in err
    assert f"{bad / 'config.json'}: cannot be read as JSON" in err
    assert (run / "config.json").read_text() == compact and (bad / "config.json").read_text() == "{not json"
    assert migrate_records.main([str(tmp_path / "nowhere")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_script_runs_from_the_command_line(tmp_path):
    run = _old_record(tmp_path)
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "migrate_records.py"), str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "migrated 1 of 1 records" in r.stdout, r.stdout + r.stderr
    assert json.loads((run / "config.json").read_text())["config"]["out"] == ".."


@pytest.mark.parametrize("folder", ["docs/reproduction_records"])
def test_committed_records_hold_no_absolute_path(folder):
    files = sorted((ROOT / folder).glob("*/config.json")) + sorted((ROOT / folder).glob("*/metrics.json"))
    files += sorted((ROOT / folder).glob("reproduce_invocations.json"))
    assert len(files) > 2
    bad = [str(f.relative_to(ROOT)) for f in files if '": "/' in f.read_text()]
    assert not bad, f"absolute paths in {bad}: run python scripts/migrate_records.py"


def test_migration_makes_surrogate_paths_relative_and_drops_invocation_paths(tmp_path):
    run = _old_record(tmp_path)
    sur = run.parent / "none-fashion_mnist-s1000-abc"
    sur.mkdir()
    details = {"surrogate": {"run_dir": str(sur.resolve()), "seed": 1000}, "n_images": 8}
    metrics = {"suite": {"transfer_fgsm": {"result": {"details": details}}, "clean": {"result": {}}},
               "train": {"steps": 8}}
    atomic_write_json(run / "metrics.json", metrics)
    atomic_write_json(run.parent / "reproduce_invocations.json", [{"command": "c", "results": "/abs/x", "n": 1}])
    assert migrate_records.main([str(run.parent)]) == 0
    got = json.loads((run / "metrics.json").read_text())
    s = got["suite"]["transfer_fgsm"]["result"]["details"]["surrogate"]
    assert s == {"run_dir": "../none-fashion_mnist-s1000-abc", "seed": 1000,
                 "run_dir_relative_to": "the evaluated record's folder"}
    assert (run / s["run_dir"]).resolve() == sur.resolve()
    got["suite"]["transfer_fgsm"]["result"]["details"]["surrogate"] = details["surrogate"]
    assert got == metrics  # nothing else changed
    assert json.loads((run.parent / "reproduce_invocations.json").read_text()) == [{"command": "c", "n": 1}]
    assert migrate_records.main([str(run.parent), "--check"]) == 0  # idempotent
    # a surrogate that is not beside the record is named and left as it is
    details["surrogate"]["run_dir"] = "/somewhere/else/none-x"
    atomic_write_json(run / "metrics.json", metrics)
    assert migrate_records.main([str(run.parent)]) == 1
    assert json.loads((run / "metrics.json").read_text()) == metrics


def test_atomic_write_json_is_the_format_the_migration_expects(tmp_path):
    obj = {"b": 1, "a": {"x": "é", "out": "/p"}}
    atomic_write_json(tmp_path / "f.json", obj)
    assert (tmp_path / "f.json").read_text() == migrate_records._dump(obj)
