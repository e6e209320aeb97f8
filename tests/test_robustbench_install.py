"""The torchattacks/robustbench file clash: torchattacks 3.5.1's wheel ships an old `robustbench/`
copy, so whichever is installed last owns those files. The installed files must be robustbench
1.1.1's own (scripts/install.sh installs it after torchattacks); checked against its RECORD."""
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


def test_torchattacks_clash_is_real_and_resolved():
    try:
        ta = md.distribution("torchattacks")
    except md.PackageNotFoundError:
        pytest.skip("torchattacks not installed")
    theirs = {str(f): f"{f.hash.mode}={f.hash.value}" for f in _hashed_py_files(ta)}
    if not theirs:
        pytest.skip("this torchattacks build ships no robustbench/ copy")
    ours = {str(f): f"{f.hash.mode}={f.hash.value}" for f in _hashed_py_files(RB)}
    differing = [p for p in theirs if p in ours and theirs[p] != ours[p]]
    assert differing, "expected torchattacks' robustbench copy to differ from robustbench 1.1.1"
    for p in differing:  # on disk: robustbench's version, not torchattacks'
        f = next(f for f in RB.files if str(f) == p)
        assert _record_hash(f.locate()) == ours[p] != theirs[p]
