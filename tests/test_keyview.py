"""The leaderboard at a glance (leaderboard/keyview.py), RobustBench's published rows with a record ranked
among them (leaderboard/published.py, `--robustbench`), and the new figures. Records are written as
files (config.json + metrics.json, the shape the suite writes), so every expected number is known."""
import csv
import html
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from leaderboard import build_table, render
from leaderboard import keyview, published

ROOT = Path(__file__).resolve().parent.parent
VALUES = {  # regularizer -> per-seed (clean acc, noise rel. robustness, boundary median sq L2)
    "none": [(0.90, 0.50, 0.0020), (0.88, 0.52, 0.0024), (0.91, 0.49, 0.0022)],
    "pixel_sim": [(0.86, 0.60, 0.0030), (0.85, 0.63, 0.0034), (0.87, 0.61, 0.0029)],
}


def _record(root: Path, reg: str, seed: int, clean: float, rel: float, med: float, extra_suite=None, name=None):
    rd = root / (name or f"{reg}-s{seed}")
    rd.mkdir(parents=True)
    cfg = {"regularizer": reg, "reg_params": {}, "seed": seed, "dataset": "cifar10", "color": "rgb", "suite": "t"}
    rec = {"config": cfg, "hash": f"{reg}{seed}", "comparison_key": "ck1",
           "regularizer": {"name": reg, "params": {}}, "model": {"arch": "ResNet18", "width": 0.25, "params": 1000},
           "data": {"dataset": "cifar10", "color": "rgb", "n_test": 500}, "budget": {"steps": 100, "epochs": 1}}

    def ent(test, summary, n_examples=500, **proto):
        return {"protocol": {"test": test, "version": "1", **proto}, "seed": seed, "n_examples": n_examples,
                "result": {"summary": summary}, "cost": {"seconds": 1.0}, "lower_is_better":
                    ["median_sq_l2"] if "median_sq_l2" in summary else []}
    suite = {"clean": ent("clean", {"accuracy": clean}),
             "gaussian_noise": ent("gaussian_noise", {"relative_robustness": rel, "mean_accuracy": rel * clean}),
             "boundary": ent("boundary", {"median_sq_l2": med, "success_rate": 1.0, "convergence_auc": med},
                             n=50, repeats=5, steps=50)}
    suite.update(extra_suite or {})
    (rd / "config.json").write_text(json.dumps(rec))
    (rd / "metrics.json").write_text(json.dumps({"train": {"done": True, "wall_s": 10.0 + seed, "steps": 100},
                                                 "suite": suite, "suite_name": "t"}))
    return rd


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("kv") / "results"
    for reg, rows in VALUES.items():
        for s, (c, r, m) in enumerate(rows):
            skip = {"transfer_fgsm": {"protocol": {"test": "transfer_fgsm"}, "seed": s, "n_examples": 500,
                                      "result": {"summary": {}, "details": {"skipped": "no surrogate <model>"}}}}
            _record(root, reg, s, c, r, m, extra_suite=skip if reg == "pixel_sim" else None)
    return root


def test_key_view_columns_units_and_values(results):
    table = build_table(results)
    cols = keyview.key_columns(table)
    heads = [h for _, h, _ in cols]
    assert "boundary median sq. L2 (x1e-3)" in heads and "clean acc. (%)" in heads
    metrics = [m for m, _, _ in cols]
    # nothing constant, duplicated or budget-fixed
    assert not any(m.endswith(("success_rate", "convergence_auc")) or m == "train.steps" for m in metrics)
    assert len(metrics) <= 8
    text = render(table, "term", ) if False else keyview.render_key(table, "term", width=400)
    med = np.array([v[2] for v in VALUES["pixel_sim"]]) * 1e3
    base = np.array([v[2] for v in VALUES["none"]]) * 1e3
    # cell: mean ± SEM (n), scaled to the header's unit
    assert f"{med.mean():.3g} ± {stats.sem(med):.2g} (3)" in text
    # Δ to none with the 95% interval paired over the seed blocks both rows have (seeds 0-2 each), against
    # scipy's own interval on the per-block differences, and the line says so
    ci = stats.ttest_1samp(med - base, 0.0).confidence_interval(0.95)
    assert f"Δ {med.mean() - base.mean():+.3g} [{ci.low:+.3g}, {ci.high:+.3g}] paired n=3" in text
    # the protocol line names the images attacked per test (boundary: 50 of the 500 test images)
    assert "boundary 50 (x5 starts, 50 steps)" in text and "clean 500" in text
    # a skipped test says why in its cell
    assert "n/a: no surrogate <model>" in text


def test_metrics_pattern_and_full_csv(results, tmp_path):
    out = subprocess.run([sys.executable, "-m", "bench", "leaderboard", str(results), "--metrics", "boundary.*"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "boundary.success_rate" in out.stdout and "clean.accuracy" not in out.stdout
    csv_text = render(build_table(results), "csv")
    assert "boundary.success_rate|mean" in csv_text and "train.steps|mean" in csv_text


def _board_record(root, acc):
    suite = {"rb_autoattack_linf": {"protocol": {"test": "rb_autoattack_linf", "version": "2", "n": 200,
                                                 "eps": 8 / 255},
                                    "seed": 0, "n_examples": 500, "result": {"summary": {"robust_accuracy": acc}}}}
    return _record(root, "none", 0, 0.8, 0.5, 0.002, extra_suite=suite, name="rb")


def test_published_rows_load_with_their_source():
    df = published.load_published()
    assert set(df["threat_model"]) == {"Linf", "L2", "corruptions"}
    assert df["commit"].str.fullmatch(r"[0-9a-f]{40}").all()
    assert df["source_file"].str.startswith("model_info/cifar10/").all()
    std = df[(df["name"] == "Standard") & (df["threat_model"] == "Linf")].iloc[0]
    assert std["robust_acc"] == 0.0 and std["clean_acc"] == 94.78
    adv = df[df["threat_model"] != "corruptions"]
    assert (adv["robust_acc"] <= adv["clean_acc"]).all()


def test_rank_among_published_by_hand(tmp_path):
    pub = tmp_path / "pub.csv"
    pub.write_text("dataset,threat_model,name,paper,venue,architecture,additional_data,eps,clean_acc,robust_acc,"
                   "robust_metric,link,source_file,commit\n"
                   "cifar10,Linf,A,pa,,WRN,False,8/255,90,60,autoattack_acc,,f/A.json,c\n"
                   "cifar10,Linf,B,pb,,WRN,False,8/255,88,50,autoattack_acc,,f/B.json,c\n"
                   "cifar10,Linf,C,pc,,WRN,False,8/255,85,40,autoattack_acc,,f/C.json,c\n"
                   "cifar10,L2,D,pd,,WRN,False,0.5,85,99,autoattack_acc,,f/D.json,c\n")
    _board_record(tmp_path / "r", 0.55)
    b = published.board(build_table(tmp_path / "r"), "cifar10:Linf", path=pub)
    assert list(b["name"]) == ["A", "none", "B", "C"] and list(b["rank"]) == [1, 2, 3, 4]
    assert list(b["source"]) == ["published", "evaluated here", "published", "published"]
    assert b.iloc[1]["robust_acc"] == pytest.approx(55.0) and b.iloc[1]["n_images"] == 200


def test_cli_robustbench_board_rank_matches_the_data_file(tmp_path):
    _board_record(tmp_path / "r", 0.3)
    out = subprocess.run([sys.executable, "-m", "bench", "leaderboard", str(tmp_path / "r"), "--robustbench",
                          "cifar10:Linf"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    with open(published.DATA) as f:
        rows = [r for r in csv.DictReader(f) if r["threat_model"] == "Linf"]
    expected = 1 + sum(float(r["robust_acc"]) > 30.0 for r in rows)  # hand count: published rows strictly better
    line = next(ln for ln in out.stdout.splitlines() if "* none" in ln)
    assert line.split()[0] == str(expected), line
    assert len([ln for ln in out.stdout.splitlines() if re.match(r"^\d+ ", ln)]) == len(rows) + 1


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian chromium not installed "
                    "(apt-get install chromium)")
def test_key_view_in_headless_chromium_at_1280px(results, tmp_path):
    root = tmp_path / "evil"
    import shutil
    shutil.copytree(results, root)
    for rd in root.glob("pixel_sim-*"):
        rec = json.loads((rd / "config.json").read_text())
        rec["regularizer"]["name"] = "<img src=x onerror=alert(1)>"
        (rd / "config.json").write_text(json.dumps(rec))
    page = render(build_table(root), "html")
    # after the page's own script: record the layout width and sort by the clean-accuracy column, ascending
    probe = ("<script>var th=document.querySelector('th[data-metric=\"clean.accuracy\"]');th.click();"
             "document.body.setAttribute('data-scroll',document.documentElement.scrollWidth);"
             "document.body.setAttribute('data-client',document.documentElement.clientWidth);</script>")
    f = tmp_path / "board.html"
    f.write_text(page.replace("</body>", probe + "</body>"))
    proc = subprocess.run(["/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu",
                           "--disable-background-networking", "--window-size=1280,900",
                           f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", f.as_uri()],
                          capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    scroll = int(re.search(r'data-scroll="(\d+)"', dom).group(1))
    client = int(re.search(r'data-client="(\d+)"', dom).group(1))
    assert client <= 1280 and scroll <= client, (scroll, client)  # no horizontal scrolling
    assert "<img src=x" not in dom and "&lt;img src=x onerror=alert(1)&gt;" in dom
    body = dom.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    names = [html.unescape(n) for n in re.findall(r'<td class="name">(.*?)</td>', body)]
    # ascending clean accuracy: pixel_sim (mean 0.86) before none (0.897)
    assert names == ["<img src=x onerror=alert(1)>", "none"]


def test_figures_boundary_log_axis_and_difference_panel(results):
    import matplotlib
    matplotlib.use("Agg")
    from leaderboard.plots import make_figures
    figs = make_figures(results, log=lambda m: None)
    ax = figs["boundary"].axes[0]
    assert ax.get_yscale() == "log"
    leg = ax.get_legend()
    fig = figs["boundary"]
    fig.canvas.draw()
    lb, ab = leg.get_window_extent(), ax.get_window_extent()
    assert lb.y1 <= ab.y0 + 1  # the legend sits below the axes: it covers no bar
    d = figs["diff_to_none"]
    titles = [a.get_title(loc="left") for a in d.axes]
    assert any(t.startswith("clean accuracy") for t in titles)
    a0 = d.axes[[i for i, t in enumerate(titles) if t.startswith("clean accuracy")][0]]
    assert any(list(ln.get_xdata()) == [0, 0] for ln in a0.get_lines())  # the zero line
    assert a0.get_legend() is not None
    x = np.array([v[0] for v in VALUES["pixel_sim"]])
    y = np.array([v[0] for v in VALUES["none"]])
    pts = [ln for ln in a0.get_lines() if list(ln.get_xdata()) != [0, 0]]
    assert pts[0].get_xdata()[0] == pytest.approx(x.mean() - y.mean())
