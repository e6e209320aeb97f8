"""Shared fixtures. tests/ is deliberately not a package (robustbench's wheel ships one named `tests`)."""
import os

import pytest
import torch

os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(autouse=True)
def _threads():
    # Two cores in CI; jobs that run side by side set 1 thread themselves.
    torch.set_num_threads(2)
    yield


def tiny_config(tmp_path, **kw):
    from bench.config import build_config
    over = dict(out=str(tmp_path / "results"), progress=False)
    over.update(kw)
    return build_config("tiny", over)
