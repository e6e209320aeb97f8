"""Third-party regularizers: an installed distribution (entry point `regbench.regularizers`), a
broken one, and `--plugin module`, each through the real CLI in a subprocess; the example plugin that
transforms the inputs (examples/regbench_cutout, installed by its own entry point) and the step hooks."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "regbench_cutout"

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


IDENTITY_SRC = textwrap.dedent('''
    import regularizers

    @regularizers.register("identity_tf")
    class IdentityTransform(regularizers.Regularizer):
        """A step hook that returns the batch unchanged: training must be exactly `none`'s."""
        def transform_batch(self, x, y, step):
            return x
''')


def example_entry_points() -> dict[str, str]:
    """The example's `regbench.regularizers` entry points, as its pyproject.toml declares them."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    meta = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())
    return dict(meta["project"]["entry-points"]["regbench.regularizers"])


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
    make_dist(site, "regbench-cutout", "regbench_cutout", (EXAMPLE / "regbench_cutout.py").read_text(),
              example_entry_points())
    (site / "my_local_regs.py").write_text(LOCAL_SRC)
    (site / "my_identity_regs.py").write_text(IDENTITY_SRC)
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


# --------------------------------------------------------------------------- plugins that change the step
def _trained(site: Path, out: Path, reg: str, *extra) -> tuple[dict, dict, Path]:
    r = bench(site, "run", "--regularizer", reg, "--preset", "tiny", "--no-eval", "--no-progress", "--no-estimate",
              "--seed", "3", "--set", "n_train=128", "--out", str(out), *extra)
    assert r.returncode == 0, r.stderr[-2000:]
    (run,) = [p for p in out.iterdir() if p.name.startswith(reg + "-")]
    import torch
    return (torch.load(run / "model.pt", weights_only=True), json.loads((run / "metrics.json").read_text())["train"],
            run)


def training_changed(a: dict, b: dict) -> bool:
    """The check an input-transforming plugin must pass: its final weights differ from `none`'s (same seed)."""
    import torch
    return any(not torch.equal(a[k], b[k]) for k in a)


def test_example_input_transform_plugin_changes_training_and_identity_does_not(site, tmp_path):
    none, _, _ = _trained(site, tmp_path, "none")
    cutout, tr, run = _trained(site, tmp_path, "cutout")
    rec = json.loads((run / "config.json").read_text())["regularizer"]
    assert rec["class"] == "regbench_cutout.Cutout" and rec["params"] == {"size": 8, "fill": 0.5}
    assert tr["step_hooks"] == ["transform_batch"] and tr["extra_forward_images"] == 0
    assert tr["steps"] == 4 and tr["task_images"] == 128  # the same step budget as none
    assert training_changed(cutout, none)
    # an identity transform fails the check: bit-identical weights to none's (fp32 CPU path)
    ident, tr_id, _ = _trained(site, tmp_path, "identity_tf", "--plugin", "my_identity_regs")
    assert tr_id["step_hooks"] == ["transform_batch"]
    assert not training_changed(ident, none)


def test_the_example_plugin_registers_by_entry_point_and_checks_its_parameters(site):
    r = bench(site, "list", "cutout")
    assert r.returncode == 0 and "[entry-point:regbench-cutout] size=8, fill=0.5" in r.stdout, r.stdout + r.stderr
    r = bench(site, "run", "-r", "cutout", "--preset", "tiny", "--no-eval", "--set", "reg_params.size=0",
              "--out", str(site / "bad"))
    assert r.returncode == 2 and "regularizer cutout: size must be >= 1 and fill in [0, 1], got 0, 0.5" in r.stderr


def test_extra_loss_hook_is_added_logged_and_counted(tmp_path):
    """A plugin that adds a loss from its own forward (a flip-consistency term): its forward and backward are
    counted per step, its term is the logged reg_raw, and a bad return is a one-line error."""
    import torch
    import regularizers
    from bench.core.config import build_config
    from bench.engine.trainer import Trainer

    @regularizers.register("test_flip_consistency")
    class FlipConsistency(regularizers.Regularizer):
        from dataclasses import dataclass

        @dataclass
        class Params:
            weight: float = 0.5

        def extra_loss(self, x, y, step):
            with torch.no_grad():
                target = step.model(x).softmax(1)  # counted as a forward only
            return self.hp.weight * torch.nn.functional.cross_entropy(step.model(x.flip(-1)), target), {"w": 1.0}
    try:
        t = Trainer(build_config("tiny", dict(out=str(tmp_path), regularizer="test_flip_consistency", n_train=64,
                                              progress=False)), log=lambda *a: None)
        t.setup_optimizer()
        t.start_loop()
        t.step()
        assert t.state["extra_forward_images"] == 64 and t.state["extra_backward_images"] == 32
        assert float(t.rlog["reg_raw"]) > 0 and t.rlog["w"] == 1.0 and t.hooks == ("extra_loss",)
        FlipConsistency.extra_loss = lambda self, x, y, step: step.model(x)
        with pytest.raises(regularizers.base.PenaltyError, match="extra_loss\\(\\) must return a scalar"):
            t.step()
    finally:
        regularizers.REGULARIZERS.unregister("test_flip_consistency")
