"""The torchattacks/robustbench file clash: torchattacks 3.5.1's PyPI wheel ships an old `robustbench/`
copy, so whichever is installed last would own those files. scripts/install.sh rebuilds torchattacks
without that copy; the installed files must be robustbench 1.1.1's own, checked against its RECORD."""
import base64
import hashlib
import importlib.metadata as md

import pytest

try:
    RB = md.distribution("robustbench")
except md.PackageNotFoundError:
    pytest.skip("robustbench is not installed (optional extra)", allow_module_level=True)


def _record_hash(path) -> str:
    digest = hashlib.sha256(path.read_bytes()).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _hashed_py_files(dist):
    return [f for f in (dist.files or []) if f.hash is not None and str(f).startswith("robustbench/")
            and str(f).endswith(".py")]


def test_robustbench_is_1_1_1():
    assert RB.version == "1.1.1"


def test_installed_robustbench_files_are_robustbench_1_1_1s():
    files = _hashed_py_files(RB)
    assert len(files) > 20
    wrong = [str(f) for f in files if f"{f.hash.mode}={f.hash.value}" != _record_hash(f.locate())]
    assert not wrong, f"files overwritten (by torchattacks' copy?): {wrong[:5]}; reinstall robustbench==1.1.1 last"
    # version-specific content: 1.1.1's load_model knows timm-hosted entries
    utils = next(f for f in files if str(f) == "robustbench/utils.py").read_text()
    assert "timm.is_model" in utils


def test_torchattacks_ships_no_robustbench_copy():
    """scripts/install.sh rebuilds torchattacks 3.5.1 without its stale robustbench/ copy, so robustbench
    1.1.1's files are the only robustbench on disk, whatever the install order."""
    try:
        ta = md.distribution("torchattacks")
    except md.PackageNotFoundError:
        pytest.skip("torchattacks not installed")
    files = [str(f) for f in (ta.files or [])]
    assert any(f.startswith("torchattacks/") for f in files)
    assert not [f for f in files if f.startswith("robustbench/")], "torchattacks ships a robustbench/ copy"
    owners = {d.metadata["Name"] for d in md.distributions()
              if any(str(f).startswith("robustbench/") and str(f).endswith(".py") for f in (d.files or []))}
    assert owners == {"robustbench"}, owners
