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


STEP_PATHS = ("auto", "plain", "fast")


def cpu_native_bf16() -> tuple[bool, str]:
    """Whether this CPU computes bf16 natively (AVX512_BF16 or AMX-BF16 on x86, as oneDNN uses them), and
    how that was decided. torch asks cpuid (`torch.cpu._is_avx512_bf16_supported`, `_is_amx_tile_supported`);
    where those private helpers are missing, the `avx512_bf16`/`amx_bf16` flags of /proc/cpuinfo answer.
    Without native support bf16 is emulated and slower than float32, so `auto` stays plain there."""
    cpu = getattr(torch, "cpu", None)
    for fn in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        f = getattr(cpu, fn, None)
        if f is None:
            continue
        with contextlib.suppress(Exception):
            if bool(f()):
                return True, f"torch.cpu.{fn}()"
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    hit = sorted(flags & {"avx512_bf16", "amx_bf16"})
                    return (True, f"/proc/cpuinfo flag {hit[0]}") if hit else (False, "no avx512_bf16/amx_bf16 flag")
    return False, "torch reports no AVX512_BF16/AMX and /proc/cpuinfo has no bf16 flag"


def resolve_step_path(option: str | None, device_name: str | None = "auto") -> str:
    """The train step's path, `plain` (float32 NCHW: bit-exact and resumable, the same numbers on any CPU of
    one kind) or `fast` (channels_last + bf16 autocast, float32 loss and penalty), from the run's option:
    `plain`/`fast` as given; `auto` -> fast on CUDA and on CPUs with native bf16 (`cpu_native_bf16`), plain
    elsewhere; None (the default) -> fast on CUDA, plain on every CPU (so a CPU run's numbers never depend on
    which CPU it met). Decided from the device *name* without touching a GPU."""
    if option not in (None,) + STEP_PATHS:
        raise ValueError(f"step_path must be one of {', '.join(STEP_PATHS)} (or unset), got {option!r}")
    if option in ("plain", "fast"):
        return option
    name = "auto" if device_name is None else str(device_name)
    cuda = name.startswith("cuda") or (name == "auto" and torch.cuda.is_available())
    if cuda:
        return "fast"
    if option == "auto" and name in ("auto", "cpu"):
        return "fast" if cpu_native_bf16()[0] else "plain"
    return "plain"


SHARED_ENV = "REGBENCH_DEVICE_SHARED_BY"  # set by the launcher: how many worker processes share this device


def worker_devices(mask: str | None, count: int) -> list[str]:
    """The device tokens worker processes get as their own CUDA_VISIBLE_DEVICES, one per visible GPU:
    the parent's mask entries (indices, GPU-/MIG- UUIDs, as written), not plain indices, which would
    name physical GPUs 0..count-1 whatever the parent was given. CUDA stops at the first invalid entry,
    so only the first `count` (= torch.cuda.device_count()) entries are kept. No mask: 0..count-1."""
    if mask is None:
        return [str(i) for i in range(count)]
    tokens = [t.strip() for t in mask.split(",") if t.strip()]
    return tokens[:max(count, 0)]


def device_shared_by() -> int:
    """How many worker processes the launcher put on this process's device (1: not shared). When >1,
    the CUDA-event and wall seconds of a run include the other processes' work."""
    try:
        return max(1, int(os.environ.get(SHARED_ENV, "1")))
    except ValueError:
        return 1


def device_info(device: torch.device) -> dict:
    """What the device is (recorded with every run: the leaderboard shows what each result cost where)."""
    d = {"type": device.type, "threads": torch.get_num_threads(), "shared_by": device_shared_by()}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        d.update(name=p.name, memory_gb=round(p.total_memory / 2**30, 1),
                 visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"))
    else:
        d["name"] = platform.processor() or platform.machine()
        with contextlib.suppress(Exception):
            for line in open("/proc/cpuinfo"):
                if line.startswith("model name"):
                    d["name"] = line.split(":", 1)[1].strip()
                    break
        d["cpus"] = os.cpu_count()
    return d


def precision_info(device: torch.device, amp_dtype: torch.dtype | None = None) -> dict:
    """Every switch that changes the numbers a run computes (recorded in config.json): TF32 for
    matmuls (torch.backends.cuda.matmul.allow_tf32 / float32_matmul_precision) and for cuDNN
    convolutions (torch.backends.cudnn.allow_tf32, on by default), and the autocast dtype of the step.
    `effective_float32` says what float32 convolutions/matmuls really ran in on this device."""
    cuda = device.type == "cuda"
    d = {"autocast_dtype": None if amp_dtype is None else str(amp_dtype).replace("torch.", ""),
         "float32_matmul_precision": torch.get_float32_matmul_precision(),
         "cuda_matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
         "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
         "cuda_matmul_allow_bf16_reduced_precision_reduction":
             bool(getattr(torch.backends.cuda.matmul, "allow_bf16_reduced_precision_reduction", False)),
         "cuda_matmul_allow_fp16_reduced_precision_reduction":
             bool(getattr(torch.backends.cuda.matmul, "allow_fp16_reduced_precision_reduction", False))}
    if cuda:
        conv = "tf32" if d["cudnn_allow_tf32"] else "float32"
        mm = "tf32" if (d["cuda_matmul_allow_tf32"] or d["float32_matmul_precision"] != "highest") else "float32"
        d["effective_float32"] = {"conv": conv, "matmul": mm}
    else:
        d["effective_float32"] = {"conv": "float32", "matmul": "float32"}
    return d


def fold_tolerance(device: torch.device, amp_dtype: torch.dtype | None = None) -> float:
    """Relative tolerance for "the same function up to float rounding" (e.g. batch norm folded into
    convolutions): float32 round-off (1e-4) on the CPU or with TF32 off; TF32's 10-bit mantissa
    (~1e-3 per op, accumulating over ~20 layers) allows 2e-2; bf16/fp16 autocast 5e-2."""
    if amp_dtype in (torch.bfloat16, torch.float16):
        return 5e-2
    if device.type == "cuda":
        p = precision_info(device)["effective_float32"]
        if "tf32" in p.values():
            return 2e-2
    return 1e-4


def determinism_info(device: torch.device, amp_dtype: torch.dtype | None = None) -> dict:
    """What decides whether a rerun is bit-identical (recorded in config.json, outside the hash)."""
    d = {"threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(),
         "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS"),
         "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
         "float32_matmul_precision": torch.get_float32_matmul_precision(),
         "mkldnn_enabled": bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled),
         "device_type": device.type, "precision": precision_info(device, amp_dtype),
         "bit_identical_when": "same torch version, device kind, thread count and step path (on a CPU, plain "
                               "fp32 and fast bf16 paths alike: reruns and resumed runs are bit-identical; other "
                               "thread counts, other CPU kinds or CUDA (bf16 autocast, cuDNN) give close but not "
                               "identical weights)"}
    if device.type == "cuda":
        d.update(cudnn_deterministic=torch.backends.cudnn.deterministic, cudnn_benchmark=torch.backends.cudnn.benchmark,
                 cuda_matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32,
                 cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                 CUBLAS_WORKSPACE_CONFIG=os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
    return d
