"""Third-party regularizers: an installed distribution (entry point `regbench.regularizers`), a
broken one, and `--plugin module`, each through the real CLI in a subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PLUGIN_SRC = textwrap.dedent('''
    """A regularizer shipped by a separate package."""
    from dataclasses import dataclass
    import regularizers

    class FeatureL2(regularizers.Regularizer):
        @dataclass
        class Params:
            alpha: float = 0.01

        def penalty(self, feats, batch):
            return sum(f.pow(2).mean() for f in feats)
''')

LOCAL_SRC = textwrap.dedent('''
    from dataclasses import dataclass
    import regularizers

    @regularizers.register("local_l1")
    class LocalL1(regularizers.Regularizer):
        @dataclass
        class Params:
            alpha: float = 0.001

        def penalty(self, feats, batch):
            return feats[-1].abs().mean()
''')


def make_dist(site: Path, dist: str, module: str, source: str, entry_points: dict[str, str]):
    """A real installed distribution: a module plus NAME-VERSION.dist-info with entry_points.txt."""
    (site / f"{module}.py").write_text(source)
    info = site / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    eps = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[regbench.regularizers]\n{eps}\n")
    (info / "RECORD").write_text("")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    make_dist(site, "regbench-feature-l2", "regbench_feature_l2", PLUGIN_SRC,
              {"feature_l2": "regbench_feature_l2:FeatureL2"})
    make_dist(site, "regbench-broken", "regbench_broken", "raise ImportError('needs a missing library')\n",
              {"broken_reg": "regbench_broken:Broken"})
    (site / "my_local_regs.py").write_text(LOCAL_SRC)
    return site


def bench(site: Path, *args, timeout=240):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]), PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=site, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_list_shows_sources_and_broken_plugin(site):
    r = bench(site, "list", "--plugin", "my_local_regs")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()

    def line(name):
        hits = [ln for ln in lines if ln.strip().startswith(name + " ")]
        assert hits, f"{name} not listed:\n{r.stdout}"
        return hits[0]
    assert "[entry-point:regbench-feature-l2]" in line("feature_l2")
    assert "[plugin:my_local_regs]" in line("local_l1")
    for builtin in ("none", "pixel_sim", "pixel_th", "neural_pred"):
        assert "[builtin]" in line(builtin)
    broken = [ln for ln in lines if "broken_reg" in ln]
    assert broken and "failed to load" in broken[0] and "needs a missing library" in broken[0]


def test_installed_plugin_trains_by_name(site, tmp_path):
    r = bench(site, "run", "--regularizer", "feature_l2", "--preset", "tiny", "--no-eval", "--no-progress",
              "--set", "epochs=1", "--set", "n_train=64", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr[-2000:]
    (run,) = [p for p in tmp_path.iterdir() if p.name.startswith("feature_l2-")]
    rec = json.loads((run / "config.json").read_text())
    assert rec["regularizer"]["class"] == "regbench_feature_l2.FeatureL2"
    assert rec["regularizer"]["params"] == {"alpha": 0.01}
    log = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()]
    assert any(e.get("reg_raw", 0) > 0 for e in log)  # the plugin's penalty was applied
    assert json.loads((run / "metrics.json").read_text())["train"]["done"]


def test_local_plugin_module_and_unknown_names(site, tmp_path):
    r = bench(site, "run", "--plugin", "my_local_regs", "--regularizer", "local_l1", "--preset", "tiny",
              "--no-eval", "--no-progress", "--set", "n_train=64", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr[-2000:]
    assert any(p.name.startswith("local_l1-") for p in tmp_path.iterdir())
    r = bench(site, "run", "--regularizer", "no_such_reg", "--preset", "tiny", "--no-eval", "--out", str(tmp_path))
    assert r.returncode == 2
    assert "unknown regularizer 'no_such_reg'" in r.stderr and "pixel_th" in r.stderr and "feature_l2" in r.stderr
    r = bench(site, "run", "--plugin", "not_a_module_xyz", "--regularizer", "none", "--preset", "tiny",
              "--no-eval", "--out", str(tmp_path))
    assert r.returncode == 2 and "not_a_module_xyz" in r.stderr


def test_in_process_registry_reports_broken_plugin_and_keeps_builtins(site, monkeypatch):
    import importlib.metadata  # noqa: F401
    import regularizers
    from regularizers import registry
    monkeypatch.syspath_prepend(str(site))
    reg = registry.REGULARIZERS
    monkeypatch.setattr(reg, "_eps_loaded", False)
    monkeypatch.setattr(reg, "_errors", {})
    monkeypatch.setattr(reg, "_entries", dict(reg._entries))
    names = regularizers.available()
    assert {"none", "pixel_sim", "pixel_th", "neural_pred", "feature_l2"} <= set(names)
    errs = regularizers.plugin_errors()
    assert any("broken_reg" in k and "needs a missing library" in v for k, v in errs.items())
    src = {e.name: e.source for e in regularizers.entries()}
    assert src["feature_l2"] == "entry-point:regbench-feature-l2" and src["pixel_sim"] == "builtin"
