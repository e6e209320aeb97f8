"""Device helpers every layer shares: resolving a device name, host-to-device copies without a
stream sync, a synchronising barrier, what the device is, and what decides bit-identical reruns."""
from __future__ import annotations

import contextlib
import os
import platform
import re

import torch

_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def resolve_device(name: str = "auto") -> torch.device:
    """`auto | cpu | cuda | cuda:N | mps` -> a torch.device that exists on this machine (a ValueError
    in one line otherwise: an unknown name, or CUDA asked for where there is none)."""
    name = "auto" if name is None else str(name).strip()
    if not _DEVICE_RE.match(name):
        raise ValueError(f"unknown device {name!r}; valid: auto, cpu, cuda, cuda:N")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            why = "this torch has no CUDA support" if torch.version.cuda is None else "no CUDA device is visible"
            raise ValueError(f"--device {name}: CUDA is not available on this machine ({why}); use --device cpu "
                             "or auto")
        idx = int(name.split(":")[1]) if ":" in name else 0
        if idx >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                             f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("--device mps: MPS is not available on this machine; use --device cpu or auto")
    return torch.device(name)


def to_device(t: torch.Tensor, device) -> torch.Tensor:
    """Host -> CUDA copy without a stream sync (pinned + non_blocking), so a train step that copies
    indices never waits for the GPU; a plain `.to` everywhere else."""
    device = torch.device(device)
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing to wait for elsewhere."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def available_memory(device: torch.device) -> int | None:
    """Free bytes on the device (CUDA) or available host memory (CPU); None when unknown."""
    try:
        if device.type == "cuda":
            return int(torch.cuda.mem_get_info(device)[0])
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except Exception:  # noqa: BLE001 - unknown is a valid answer
        return None
    return None


def device_info(device: torch.device) -> dict:
    """What the device is (recorded with every run: the leaderboard shows what each result cost where)."""
    d = {"type": device.type, "threads": torch.get_num_threads()}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        d.update(name=p.name, memory_gb=round(p.total_memory / 2**30, 1))
    else:
        d["name"] = platform.processor() or platform.machine()
        with contextlib.suppress(Exception):
            for line in open("/proc/cpuinfo"):
                if line.startswith("model name"):
                    d["name"] = line.split(":", 1)[1].strip()
                    break
        d["cpus"] = os.cpu_count()
    return d


def determinism_info(device: torch.device) -> dict:
    """What decides whether a rerun is bit-identical (recorded in config.json, outside the hash)."""
    d = {"threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(),
         "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS"),
         "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
         "float32_matmul_precision": torch.get_float32_matmul_precision(),
         "mkldnn_enabled": bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled),
         "device_type": device.type,
         "bit_identical_when": "same torch version, device kind, thread count and step path (CPU fp32 path: "
                               "reruns and resumed runs are bit-identical; other thread counts or CUDA "
                               "(bf16 autocast, cuDNN) give close but not identical weights)"}
    if device.type == "cuda":
        d.update(cudnn_deterministic=torch.backends.cudnn.deterministic, cudnn_benchmark=torch.backends.cudnn.benchmark,
                 cuda_matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32,
                 CUBLAS_WORKSPACE_CONFIG=os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
    return d
