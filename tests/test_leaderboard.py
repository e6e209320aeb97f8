"""Leaderboard: real tiny Fashion-MNIST records (3 seeds of `none` and of `pixel_sim`), evaluated
with a small but real suite, aggregated to mean ± SEM and rendered in every format."""
import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

import attacks
import regularizers
from bench.core import store
from bench.core.config import build_config
from bench.core.data import to_float
from bench.engine.trainer import train
from bench.core.data import load_for_config
from bench.core.records import Record
from leaderboard import build_table, load_records, render, write
from leaderboard.aggregate import fmt_value

ROOT = Path(__file__).resolve().parent.parent
SEEDS = (0, 1, 2)
REGS = {"none": {}, "pixel_sim": {"n_images": 64, "pairs_per_step": 8}}
SUITE = [("clean", {}),
         ("gaussian_noise", {"stds": [0.0, 0.05, 0.1]}),
         ("transfer_fgsm", {"eps": [0.0, 0.01, 0.02]}),
         ("corruptions", {"corruptions": ["gaussian_noise", "contrast"], "severities": [1, 4]})]
BOUNDARY = [("boundary", {"n": 2, "repeats": 1, "steps": 5, "curve_points": 2}),
            ("min_perturbation", {"n": 2, "steps": 5})]


def _cfg(out, **kw):
    base = dict(out=str(out), progress=False, n_train=64, n_test=32)
    base.update(kw)
    return build_config("tiny", base)


def make_results(out: Path) -> Path:
    """Six real records (3 seeds x none/pixel_sim) trained on one shared DataBundle and evaluated
    with a cheap real suite; the transfer surrogate is an unregularized model with another seed."""
    assert "pixel_sim" in regularizers.available()
    data = load_for_config(_cfg(out))
    attacks.register_suite("lb_test", SUITE + BOUNDARY)
    quiet = lambda *a, **k: None  # noqa: E731
    sur_dir = train(_cfg(out / "surrogate", seed=1000, suite="lb_test"), log=quiet, data=data)
    _, surrogate = Record(sur_dir).load_model()
    for reg, hp in REGS.items():
        for s in SEEDS:
            rd = train(_cfg(out, regularizer=reg, reg_params=hp, seed=s, suite="lb_test"), log=quiet, data=data)
            _, model = Record(rd).load_model()
            ctx = attacks.EvalContext(model=model, x=to_float(data.test_x), y=data.test_y, config=_cfg(out),
                                      run_dir=rd, seed=s, num_classes=data.num_classes, progress=False,
                                      surrogate=attacks.Surrogate(surrogate))
            attacks.evaluate(ctx, suite="lb_test", run_dir=rd, log=quiet)
    shutil.rmtree(out / "surrogate")  # the surrogate is not a leaderboard row
    shutil.rmtree(out / ".cache", ignore_errors=True)  # pixel_sim's target cache
    return out


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    torch.set_num_threads(2)
    return make_results(tmp_path_factory.mktemp("lb") / "results")


def _runs(root: Path):
    return sorted(p.parent for p in Path(root).glob("*/config.json"))


def _per_seed(results: Path, reg: str) -> dict:
    """metric -> per-seed values read straight from the metrics.json files (independent of leaderboard)."""
    vals = {}
    for rd in _runs(results):
        rec = json.loads((rd / "config.json").read_text())
        if rec["config"]["regularizer"] != reg:
            continue
        m = json.loads((rd / "metrics.json").read_text())
        for test, ent in m["suite"].items():
            for k, v in ent["result"]["summary"].items():
                vals.setdefault(f"{test}.{k}", []).append(v)
        vals.setdefault("train.wall_s", []).append(m["train"]["wall_s"])
    return vals


def _row(table, reg):
    rows = table[table["regularizer"] == reg]
    assert len(rows) == 1, table[["regularizer", "protocol_id", "n_seeds"]]
    return rows.iloc[0]


def test_tidy_table_has_one_row_per_record_and_metric(results):
    tidy = load_records(results)
    assert tidy["run_dir"].nunique() == 6
    assert not tidy.duplicated(["run_dir", "metric"]).any()
    assert {"clean.accuracy", "gaussian_noise.mean_accuracy", "transfer_fgsm.mean_accuracy", "score",
            "corruptions.severity_4", "train.wall_s"} <= set(tidy["metric"])


def _finite(v):
    return [x for x in v if x is not None and np.isfinite(x)]


def test_sem_mean_and_paired_difference_match_scipy(results):
    """Per metric: n = seeds with a finite value (a decision attack with no success reports NaN),
    mean, SEM = scipy.stats.sem, and the paired t-test against `none` over the seed blocks both rows have."""
    table = build_table(results)
    assert sorted(table["regularizer"]) == ["none", "pixel_sim"]
    base = _per_seed(results, "none")
    for reg in REGS:
        row = _row(table, reg)
        assert row["n_seeds"] == 3
        per = _per_seed(results, reg)
        assert len(per) >= 14
        assert row["clean.accuracy|n"] == row["score|n"] == row["gaussian_noise.mean_accuracy|n"] == 3
        for metric, v in per.items():
            f, fb = _finite(v), _finite(base.get(metric, []))
            if metric.endswith("strength_50") and len(f) < len(v):
                # never reached half of clean (None): censored at the top level, counted, not dropped
                assert row[f"{metric}|censored"] == len(v) - len(f) and row[f"{metric}|n"] == len(v)
                continue
            if not f:  # e.g. a decision attack with no success (NaN): no column, or n = 0
                assert row.get(f"{metric}|n", 0) == 0
                continue
            assert row[f"{metric}|n"] == len(f)
            assert row[f"{metric}|mean"] == pytest.approx(np.mean(f), abs=1e-12)
            if len(f) > 1:
                assert row[f"{metric}|sem"] == pytest.approx(stats.sem(f), abs=1e-12, nan_ok=True)
            if reg != "none" and fb:
                both = [(x, y) for x, y in zip(v, base.get(metric, [])) if _finite([x]) and _finite([y])]
                want = np.mean([x - y for x, y in both]) if len(both) >= 2 else np.mean(f) - np.mean(fb)
                assert row[f"{metric}|diff"] == pytest.approx(want, abs=1e-12)  # paired over common blocks
                if len(f) > 1 and len(fb) > 1 and len(f) == len(v) == len(fb) == len(base[metric]):
                    # every seed of both rows is a block (seeds 0-2 each): the paired t-test, as the report
                    d = np.subtract(v, base[metric])
                    # no spread in the differences: scipy has no p; leaderboard.stats says 1 (no difference) or 0
                    p = stats.ttest_rel(v, base[metric]).pvalue if np.ptp(d) > 0 else float(d.mean() != 0) * -1 + 1
                    assert row[f"{metric}|p"] == pytest.approx(p, abs=1e-12, nan_ok=True)
                    assert row[f"{metric}|analysis"] == "paired n=3"
    # the score is the mean relative robustness of the noise and FGSM curves (perturbed levels / level 0),
    # recomputed from the curves themselves; paired intervals contain the difference and match scipy
    for rd in _runs(results):
        m = json.loads((rd / "metrics.json").read_text())
        rels = []
        for t in ("gaussian_noise", "transfer_fgsm"):
            c = m["suite"][t]["result"]["curves"]["accuracy"]
            x, y = np.asarray(c["x"]), np.asarray(c["y"])
            rels.append(np.mean(y[x > 0] / y[x == 0][0]))
        tidy = load_records(rd)
        assert tidy.loc[tidy["metric"] == "score", "value"].item() == pytest.approx(np.mean(rels))
    row = _row(table, "pixel_sim")
    f, fb = _finite(_per_seed(results, "pixel_sim")["clean.accuracy"]), _finite(base["clean.accuracy"])
    ci = stats.ttest_rel(f, fb).confidence_interval(0.95)  # paired over the three seed blocks
    assert (row["clean.accuracy|ci_low"], row["clean.accuracy|ci_high"]) == pytest.approx((ci.low, ci.high))
    assert row["clean.accuracy|p_holm"] >= row["clean.accuracy|p"] - 1e-12


def _expected_cells(row, metrics):
    return {m: fmt_value(row[f"{m}|mean"], row[f"{m}|sem"], row[f"{m}|n"]) for m in metrics}


def test_cli_terminal_prints_both_rows_with_mean_sem_n3(results):
    out = subprocess.run([sys.executable, "-m", "bench", "leaderboard", str(results), "--metrics", "*"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    table = build_table(results)
    for reg in REGS:
        row = _row(table, reg)
        per = _per_seed(results, reg)
        # the row wraps into several blocks on a narrow terminal: every line that starts with its label
        text = "\n".join(ln for ln in out.stdout.splitlines() if ln.startswith(row["label"] + "  "))
        cells = re.findall(r"\S+ ± \S+ \(n=\d+\)", text)
        # leaderboard.derived: metrics computed from a record's results (minimal L2, relative accuracy at the
        # strongest level, corruption error) or from the none records (mCE)
        kinds = table.attrs["kinds"]
        derived = [m for m in table.attrs["metrics"] if m not in per and kinds.get(m) == "summary"
                   and f"{m}|mean" in row and row[f"{m}|n"] > 0]
        censored = [m for m in per if row.get(f"{m}|censored", 0) > 0]  # shown as lower bounds, not dropped
        shown = [m for m in per if not m.startswith("train.") and (_finite(per[m]) or m in censored)] + derived \
            + ["score", "train.wall_s"]
        assert len(cells) == len(shown), text
        for m, cell in _expected_cells(row, shown).items():
            assert cell in text, (m, cell)
            assert cell.endswith(f"(n={len(_finite(per.get(m, [0, 0, 0])))})") or m in derived or m in censored
        assert fmt_value(row["clean.accuracy|mean"], row["clean.accuracy|sem"], 3) in text
        assert re.search(r"\(n=3\)", text)


def test_md_csv_html_write_the_same_numbers(results, tmp_path):
    table = build_table(results)
    for fmt in ("md", "csv", "html"):
        rc = subprocess.run([sys.executable, "-m", "bench", "leaderboard", str(results), "--format", fmt, "--metrics", "*",
                             "--output", str(tmp_path / f"board.{fmt}")], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
        assert rc.returncode == 0, rc.stderr
    md = (tmp_path / "board.md").read_text()
    page = html.unescape((tmp_path / "board.html").read_text())
    csv = pd.read_csv(tmp_path / "board.csv")
    metrics = [c[:-5] for c in csv.columns if c.endswith("|mean")]
    assert "score" in metrics and "clean.accuracy" in metrics
    shown = [m for m in metrics if ".cost." not in m and not m.startswith("train.")] + ["train.wall_s"]
    for reg in REGS:
        crow = csv[csv["regularizer"] == reg].iloc[0]
        trow = _row(table, reg)
        md_line = next(ln for ln in md.splitlines() if ln.startswith(f"| {trow['label']} |"))
        for m in metrics:
            # CSV carries the full-precision statistics; they equal the table's
            for stat in ("mean", "sem", "diff", "p"):
                assert crow[f"{m}|{stat}"] == pytest.approx(trow[f"{m}|{stat}"], rel=1e-12, nan_ok=True)
            assert crow[f"{m}|n"] == trow[f"{m}|n"]
        # md and html show the CSV's numbers (a metric no seed has a value of, e.g. the SEM over one boundary
        # repeat, which is undefined, stays an empty cell)
        for m, cell in _expected_cells(crow, [m for m in shown if crow[f"{m}|n"] > 0]).items():
            assert cell in md_line, (m, cell, md_line)
            assert cell in page, (m, cell)
        assert crow["clean.accuracy|n"] == 3


def test_differing_protocol_is_never_averaged(results, tmp_path):
    root = tmp_path / "mixed"
    shutil.copytree(results, root)
    rd = next(p for p in _runs(root) if p.name.startswith("none-") and "-s2-" in p.name)
    m = json.loads((rd / "metrics.json").read_text())
    m["suite"]["gaussian_noise"]["protocol"]["clamp"] = "unit"  # another protocol for one seed
    store.atomic_write_json(rd / "metrics.json", m)
    table = build_table(root)
    nones = table[table["regularizer"] == "none"]
    assert sorted(nones["n_seeds"]) == [1, 2]
    assert nones["protocol_id"].nunique() == 2
    # a record with an *extra* test stays in the row: only that metric has a smaller n
    rd0 = next(p for p in _runs(root) if p.name.startswith("pixel_sim-") and "-s0-" in p.name)
    m0 = json.loads((rd0 / "metrics.json").read_text())
    extra = dict(m0["suite"]["clean"])
    extra["protocol"] = {"test": "clean_extra", "version": "1"}
    m0["suite"]["clean_extra"] = extra
    store.atomic_write_json(rd0 / "metrics.json", m0)
    row = _row(build_table(root), "pixel_sim")
    assert row["n_seeds"] == 3 and row["clean.accuracy|n"] == 3 and row["clean_extra.accuracy|n"] == 1


def _script_records(results, tmp_path) -> Path:
    root = tmp_path / "evil"
    shutil.copytree(results, root)
    for rd in _runs(root):
        rec = json.loads((rd / "config.json").read_text())
        if rec["regularizer"]["name"] == "pixel_sim":
            rec["regularizer"]["name"] = "<script>alert(1)</script>"
            store.atomic_write_json(rd / "config.json", rec)
    return root


def test_html_escapes_everything(results, tmp_path):
    page = render(build_table(_script_records(results, tmp_path)), "html")
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("<script>") == 1  # only the page's own sorting script
    md = render(build_table(_script_records(results, tmp_path / "md")), "md")
    assert "<script>" not in md


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian chromium not installed "
                    "(apt-get install chromium); documented check: open the --format html output in a browser")
def test_html_renders_in_headless_chromium(results, tmp_path):
    table = build_table(_script_records(results, tmp_path))
    page = tmp_path / "board.html"
    write(table, "html", page)
    proc = subprocess.run(["/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu",
                           "--enable-logging=stderr", "--v=0", f"--user-data-dir={tmp_path / 'profile'}",
                           "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert 'data-sortable="ready"' in dom, "the inline script did not run to the end"
    assert "Uncaught" not in proc.stderr, proc.stderr[-2000:]
    # the name is text in the rendered DOM, not an element
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert "<script>alert(1)</script>" not in dom
    # the script sorted the rows by score, best first
    body = dom.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    first = re.search(r'<td class="name">(.*?)</td>', body).group(1)
    best = table.sort_values("score|mean", ascending=False).iloc[0]["label"]
    assert html.unescape(first) == best


def test_plots_have_every_figure_with_labels_and_legends(results, tmp_path):
    from leaderboard.plots import FIGURES, make_figures
    figs = make_figures(results)
    assert set(FIGURES) == set(figs), sorted(figs)
    for name, fig in figs.items():
        for ax in fig.axes:
            if not ax.get_visible():
                continue
            assert ax.get_xlabel() and ax.get_ylabel(), name
            assert ax.get_legend() is not None and ax.get_legend().get_texts(), name
            texts = [t.get_text() for t in ax.get_legend().get_texts()]
            assert any(t.startswith("none") for t in texts) and any(t.startswith("pixel_sim") for t in texts)
    # the noise figure's shade is mean ± SEM over seeds at each std
    ax = figs["noise"].axes[0]
    line = next(ln for ln in ax.get_lines() if ln.get_label().startswith("none"))
    per_x = {}
    for rd in _runs(results):
        if rd.name.startswith("none-"):
            c = json.loads((rd / "metrics.json").read_text())["suite"]["gaussian_noise"]["result"]["curves"]["accuracy"]
            for x, y in zip(c["x"], c["y"]):
                per_x.setdefault(x, []).append(y)
    xs = sorted(per_x)
    np.testing.assert_allclose(line.get_ydata(), [np.mean(per_x[x]) for x in xs])
    poly = next(c for c in ax.collections if tuple(np.round(c.get_facecolor()[0][:3], 3)) ==
                tuple(np.round(matplotlib_rgb(line.get_color()), 3)))
    ys = poly.get_paths()[0].vertices[:, 1]
    top = max(np.mean(per_x[x]) + stats.sem(per_x[x]) for x in xs)
    assert ys.max() == pytest.approx(top)
    for name in figs:
        import matplotlib.pyplot as plt
        plt.close(figs[name])
    rc = subprocess.run([sys.executable, "-m", "bench", "plot", str(results), "--out", str(tmp_path / "figs")],
                        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert rc.returncode == 0, rc.stderr
    for name in FIGURES:
        assert (tmp_path / "figs" / f"{name}.png").stat().st_size > 1000
        assert "<svg" in (tmp_path / "figs" / f"{name}.svg").read_text()[:2000]


def test_plot_without_data_is_skipped_with_a_message(results, tmp_path, capsys):
    from leaderboard.plots import plot_all
    root = tmp_path / "clean_only"
    rd = next(p for p in _runs(results) if p.name.startswith("none-"))
    shutil.copytree(rd, root / rd.name)
    m = json.loads((root / rd.name / "metrics.json").read_text())
    m["suite"] = {"clean": m["suite"]["clean"]}
    store.atomic_write_json(root / rd.name / "metrics.json", m)
    paths = plot_all([root], tmp_path / "figs")
    assert sorted(p.name for p in paths) == ["training_cost.png", "training_cost.svg"]
    err = capsys.readouterr().err
    for name in ("noise", "fgsm", "boundary", "corruption_severity", "corruption_types"):
        assert f"figure {name} skipped" in err


def matplotlib_rgb(c):
    from matplotlib.colors import to_rgb
    return to_rgb(c)


def test_unknown_format_and_missing_dir_are_clear(tmp_path):
    with pytest.raises(ValueError, match="valid formats: term, md, csv, html"):
        render(pd.DataFrame(), "pdf")
    rc = subprocess.run([sys.executable, "-m", "bench", "leaderboard", str(tmp_path / "nope")], cwd=ROOT,
                        capture_output=True, text=True, timeout=120)
    assert rc.returncode == 2 and "results directory not found" in rc.stderr
