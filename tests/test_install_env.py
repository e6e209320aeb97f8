"""Facts of the installed environment that scripts/install.sh promises (issue 13): no security downgrade of
requests/urllib3, a clean `pip check`, only the four packages installed (no stray `benchmarks`), the
rebuilt torchattacks without its requests pin and its stale robustbench copy, and (via `make test`) a
virtual environment rather than the system Python."""
import importlib.metadata as md
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _version_tuple(v: str) -> tuple:
    out = []
    for part in v.split("+")[0].split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        out.append(int(digits))
    return tuple(out)


def test_requests_and_urllib3_are_current():
    assert _version_tuple(md.version("requests")) >= (2, 32), md.version("requests")  # CVE-2023-32681, CVE-2024-35195
    assert _version_tuple(md.version("urllib3")) >= (2,), md.version("urllib3")
    import requests
    assert _version_tuple(requests.__version__) >= (2, 32)


def test_pip_check_is_clean():
    r = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1"))
    assert r.returncode == 0, r.stdout + r.stderr


def test_only_the_four_packages_are_installed(tmp_path):
    code = ("import importlib.util as u, sys; sys.path = [p for p in sys.path if p not in ('', '.')];"
            "print({m: u.find_spec(m) is not None for m in ('bench', 'regularizers', 'attacks', 'leaderboard', 'benchmarks')})")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # what the install provides, not the shell
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    found = eval(r.stdout)  # noqa: S307 - our own dict literal
    assert found == {"bench": True, "regularizers": True, "attacks": True, "leaderboard": True, "benchmarks": False}
    r = subprocess.run([sys.executable, "-c", "import benchmarks"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=60, env=env)
    assert r.returncode != 0 and "ModuleNotFoundError" in r.stderr


def test_torchattacks_is_the_rebuilt_wheel_without_pin_or_robustbench_copy():
    dist = md.distribution("torchattacks")
    assert dist.version.startswith("3.5.1"), dist.version
    reqs = dist.requires or []
    assert not any(r.replace(" ", "").startswith("requests~=2.25") or "requests(~=2.25" in r.replace(" ", "")
                   for r in reqs), reqs
    files = [str(f) for f in (dist.files or [])]
    assert files and not [f for f in files if f.startswith("robustbench/")], "torchattacks ships robustbench/"
    import torchattacks  # still importable and working
    assert hasattr(torchattacks, "FGSM")


def test_running_in_a_virtual_environment():
    if os.environ.get("REGBENCH_REQUIRE_VENV") != "1" and sys.prefix == sys.base_prefix:
        pytest.skip("not run from a virtual environment (make test runs .venv/bin/python, and sets no flag)")
    assert sys.prefix != sys.base_prefix, "expected the project's virtual environment, not the system Python"
    assert (Path(sys.prefix) / "pyvenv.cfg").is_file()


def _pins(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def _declared_minors() -> list[str]:
    """The Python minors pyproject.toml declares (its 'Programming Language :: Python :: 3.X' classifiers)."""
    text = (ROOT / "pyproject.toml").read_text()
    found = {ln.split("::")[-1].strip().strip('",') for ln in text.splitlines()
             if "Programming Language :: Python :: 3." in ln}
    return sorted(found, key=lambda v: tuple(map(int, v.split("."))))


def test_install_script_uses_a_venv_and_per_python_constraints():
    text = (ROOT / "scripts" / "install.sh").read_text()
    assert "-m venv" in text and "--break-system-packages" not in text
    assert "scripts/constraints/py$minor.txt" in text and "open ranges" in text
    files = sorted((ROOT / "scripts" / "constraints").glob("py3.*.txt"))
    assert files
    for path in files:
        pins = _pins(path)
        names = {ln.split("==")[0].lower() for ln in pins}
        assert all("==" in ln and ";" not in ln for ln in pins), f"{path.name}: constraints must be exact pins"
        assert {"torch", "torchvision", "numpy", "requests", "urllib3", "foolbox", "robustbench", "pytest"} <= names
        assert "torchattacks" not in names and "regbench" not in names
        assert not [n for n in names if n.startswith(("nvidia-", "cuda-")) or n == "triton"], path.name


def test_a_pin_file_for_every_declared_python_from_the_floor_of_requires_python():
    import re
    text = (ROOT / "pyproject.toml").read_text()
    floor = re.search(r'^requires-python = ">=(3\.\d+)"', text, re.M).group(1)
    minors = _declared_minors()
    assert minors and minors[0] == floor, (minors, floor)  # the classifiers start at the declared floor
    files = sorted(p.name for p in (ROOT / "scripts" / "constraints").glob("py3.*.txt"))
    assert files == sorted(f"py{m}.txt" for m in minors)
    here = "%d.%d" % sys.version_info[:2]
    assert here in minors, f"running on Python {here}, which pyproject.toml does not declare"


def test_every_installed_pin_supports_the_first_release_of_its_python_minor():
    """scripts/lock.sh resolves py3.X.txt for 3.X.0 so that every patch release installs it (Debian 12 ships
    3.11.2; a pin that required 3.11.5 broke it). Checked offline against the installed distributions' own
    Requires-Python metadata, for the running interpreter's file (CI runs it on each Python it installs)."""
    from packaging.specifiers import SpecifierSet
    from packaging.utils import canonicalize_name
    here = "%d.%d" % sys.version_info[:2]
    path = ROOT / "scripts" / "constraints" / f"py{here}.txt"
    if not path.is_file():
        pytest.skip(f"no pins for Python {here}")
    # the environment's own site-packages only: an imported setuptools puts its vendored copies (packaging,
    # platformdirs, ...) on sys.path, and those are not what pip installed
    import sysconfig
    site = list(dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]))
    installed = {}
    for d in md.distributions(path=site):
        installed.setdefault(canonicalize_name(d.metadata["Name"]), d)
    checked, wrong = 0, []
    for ln in _pins(path):
        name, version = ln.split("==")
        dist = installed.get(canonicalize_name(name))
        if dist is None:  # an extra this environment did not install
            continue
        checked += 1
        if dist.version.split("+")[0] != version:
            wrong.append(f"{name}: pinned {version}, installed {dist.version}")
        rp = dist.metadata.get("Requires-Python")
        if rp and f"{here}.0" not in SpecifierSet(rp):
            wrong.append(f"{name} {dist.version} (installed) requires Python {rp}, not {here}.0")
    assert checked >= 40 and not wrong, wrong


def test_install_refuses_a_venv_made_with_another_python(tmp_path):
    """`PY=/usr/bin/python3 make test` must not silently reuse a .venv made by another interpreter: the
    installer stops with one line naming both versions, before installing anything."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    fake = venv / "bin" / "python"
    fake.write_text("#!/bin/sh\necho 3.0.1\n")  # a venv whose interpreter reports another version
    fake.chmod(0o755)
    r = subprocess.run(["bash", str(ROOT / "scripts" / "install.sh")], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PY=sys.executable, VENV=str(venv), CONSTRAINTS=""))
    assert r.returncode == 1, r.stdout + r.stderr
    here = sys.version.split()[0]
    line = [ln for ln in r.stdout.splitlines() if "error:" in ln]
    assert line and "made with Python 3.0.1" in line[0] and here in line[0] and "rm -rf" in line[0], r.stdout
    assert sorted(p.name for p in (venv / "bin").iterdir()) == ["python"]  # nothing installed


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
@pytest.mark.parametrize("how", ["env", "arg"])
def test_make_passes_the_chosen_python_to_the_installer(how):
    """`PY=/usr/bin/python3 make test` (or `make test PY=...`) makes the venv with that Python and runs the
    tests with the venv's own: the Makefile once overrode PY with the venv's path, so the installer was told
    to run an interpreter that did not exist yet (a fresh clone failed at once)."""
    env = dict(os.environ)
    env.pop("PY", None)
    cmd = ["make", "-n", "test"]
    if how == "env":
        env["PY"] = "/opt/py/bin/python3.11"
    else:
        cmd.append("PY=/opt/py/bin/python3.11")
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert any('PY="/opt/py/bin/python3.11"' in ln and "scripts/install.sh" in ln for ln in lines), r.stdout
    assert any(ln.startswith(".venv/bin/python -m pytest") for ln in lines), r.stdout
