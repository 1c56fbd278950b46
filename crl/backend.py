"""Which backend a run uses, and a warning when an accelerator is visible but jax only sees the CPU."""
from __future__ import annotations

import glob
import shutil
import subprocess
from typing import Callable

PROBE_TIMEOUT_S = 10
TPU_DEVICE_GLOBS = ("/dev/accel*", "/dev/vfio/[0-9]*")  # how TPU VMs expose their chips
INSTALL_COMMANDS = {  # what installs jax for each accelerator, from this repository's pinned files
    "gpu": "make install-gpu (CUDA 12; CUDA=13 for CUDA 13), i.e. "
           "pip install -r requirements.lock -r requirements-cuda12.lock",
    "tpu": "make install-tpu, i.e. pip install -r requirements.lock -r requirements-tpu.lock",
}


def nvidia_gpu_visible() -> bool:
    """True when `nvidia-smi -L` runs and lists a GPU."""
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def tpu_visible() -> bool:
    return any(glob.glob(pattern) for pattern in TPU_DEVICE_GLOBS)


PROBES: dict[str, Callable[[], bool]] = {"gpu": nvidia_gpu_visible, "tpu": tpu_visible}


def describe_devices() -> str:
    """'jax 0.10.2 on cpu: 1 device (cpu)' -- the backend and devices this process computes on."""
    import jax

    devices = jax.devices()
    kinds = sorted({d.device_kind for d in devices})
    plural = "s" if len(devices) > 1 else ""
    return f"jax {jax.__version__} on {jax.default_backend()}: {len(devices)} device{plural} ({', '.join(kinds)})"


def missing_accelerator_warning(backend: str, probes: dict[str, Callable[[], bool]] | None = None) -> str | None:
    """A warning naming the install command when jax runs on the CPU but a GPU or TPU is visible."""
    if backend != "cpu":
        return None
    for name, visible in (probes or PROBES).items():
        if visible():
            return (f"warning: a {name.upper()} is visible on this machine but jax runs on the CPU (its CPU-only "
                    f"build is installed); install the {name.upper()} build: {INSTALL_COMMANDS[name]}")
    return None
