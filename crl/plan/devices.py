"""Target accelerators for `crl plan`: memory and peak dense FLOP/s, from vendor datasheets; extendable by YAML."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from crl.config import ConfigError

MIB = 2**20
GIB = 2**30
TERA = 1e12
GPU_MEM_FRACTION = 0.75  # jax preallocates 75% of a GPU's memory by default (XLA_PYTHON_CLIENT_MEM_FRACTION)
TPU_MEM_FRACTION = 1.0  # jax on TPU may use all of its HBM
MEM_FRACTION_ENV = "XLA_PYTHON_CLIENT_MEM_FRACTION"


@dataclasses.dataclass(frozen=True)
class Device:
    """One accelerator: memory as the device reports it, peak dense (no sparsity) FLOP/s per number format."""

    name: str
    memory_bytes: int
    fp32_flops: float  # plain float32 (CUDA cores); matmul_precision='highest'
    tf32_flops: float  # float32 matmuls at matmul_precision 'default'/'high' (TF32 tensor cores on NVIDIA)
    bf16_flops: float  # compute_dtype=bfloat16
    mem_fraction: float = GPU_MEM_FRACTION  # of memory_bytes that jax's allocator takes by default

    @property
    def usable_bytes(self) -> int:
        return int(self.memory_bytes * self.mem_fraction)


# Memory: what nvidia-smi reports (MiB). FLOP/s: the datasheets' dense figures (their tensor-core
# numbers are quoted "with sparsity", twice the dense rate; halved here).
# A100 (SXM): NVIDIA A100 datasheet (nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf): FP32 19.5 TFLOPS,
#   TF32 156 (312 sparse), BF16 312 (624 sparse); 40 GB HBM2 / 80 GB HBM2e.
# H100 SXM: NVIDIA H100 datasheet (h100-datasheet-2430615): FP32 67 TFLOPS, TF32 989 sparse, BF16 1979 sparse;
#   80 GB HBM3.
# H200 SXM: NVIDIA H200 datasheet: the H100 SXM's compute (FP32 67, TF32 989 sparse, BF16 1979 sparse); 141 GB HBM3e.
# L40S: NVIDIA L40S datasheet: FP32 91.6 TFLOPS, TF32 366 sparse, BF16 733 sparse; 48 GB GDDR6.
# TPU v5e: Google Cloud TPU v5e docs: 197 TFLOPS bf16, 16 GiB HBM2. Google publishes no float32 rate (float32
#   matmuls run as bf16 passes on the MXU); the bf16 rate is used for all formats, which keeps the bound a bound.
DEVICES: dict[str, Device] = {d.name: d for d in (
    Device("A100-40GB", 40960 * MIB, 19.5 * TERA, 156 * TERA, 312 * TERA),
    Device("A100-80GB", 81920 * MIB, 19.5 * TERA, 156 * TERA, 312 * TERA),
    Device("H100-80GB", 81559 * MIB, 67 * TERA, 494.5 * TERA, 989.5 * TERA),
    Device("H200", 143771 * MIB, 67 * TERA, 494.5 * TERA, 989.5 * TERA),
    Device("L40S", 46068 * MIB, 91.6 * TERA, 183 * TERA, 366.5 * TERA),
    Device("TPU-v5e", 16 * GIB, 197 * TERA, 197 * TERA, 197 * TERA, mem_fraction=TPU_MEM_FRACTION),
)}
DEFAULT_DEVICES = ("A100-40GB", "A100-80GB", "H100-80GB")

# Which peak applies: (compute_dtype, matmul_precision) -> Device field.
PEAK_FIELD: dict[tuple[str, str], str] = {
    ("float32", "default"): "tf32_flops", ("float32", "high"): "tf32_flops", ("float32", "highest"): "fp32_flops",
    ("bfloat16", "default"): "bf16_flops", ("bfloat16", "high"): "bf16_flops", ("bfloat16", "highest"): "bf16_flops",
}


def peak_flops(device: Device, compute_dtype: str, matmul_precision: str) -> float:
    """The device's peak dense FLOP/s for the run's matmul format."""
    return getattr(device, PEAK_FIELD[(compute_dtype, matmul_precision)])


def load_devices(path: str | Path | None = None) -> dict[str, Device]:
    """The built-in table, plus (overriding by name) the devices of a YAML file.

    File format: `NAME: {memory_gib: 48, fp32_tflops: 91.6, tf32_tflops: 183, bf16_tflops: 366.5, mem_fraction: 0.75}`.
    """
    table = dict(DEVICES)
    if path is None:
        return table
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"devices file {path} does not exist")
    entries = yaml.safe_load(path.read_text()) or {}
    fields = ("memory_gib", "fp32_tflops", "tf32_tflops", "bf16_tflops")
    for name, entry in entries.items():
        missing = [f for f in fields if f not in (entry or {})]
        if missing:
            raise ConfigError(f"{path}: device '{name}' lacks {', '.join(missing)}; give {', '.join(fields)} "
                              f"(and optionally mem_fraction, default {GPU_MEM_FRACTION})")
        table[name] = Device(name, int(entry["memory_gib"] * GIB), entry["fp32_tflops"] * TERA,
                             entry["tf32_tflops"] * TERA, entry["bf16_tflops"] * TERA,
                             entry.get("mem_fraction", GPU_MEM_FRACTION))
    return table


def pick(table: dict[str, Device], names: list[str]) -> list[Device]:
    """The named devices, or a ConfigError listing the known names."""
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ConfigError(f"unknown device(s) {', '.join(unknown)}; known: {', '.join(table)} "
                          f"(add one with --devices-file FILE.yaml)")
    return [table[n] for n in names]
