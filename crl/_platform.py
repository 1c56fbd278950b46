"""Process-wide JAX set-up that must happen before jax is imported: XLA flags and the compile cache."""
import importlib.metadata
import os

FUSION_EMITTERS_OPTION = "xla_cpu_use_fusion_emitters"  # XLA:CPU's newer fusion code generator (jaxlib <= 0.10)
# The process default: MJX on jointed chains is ~1000x slower with the newer emitters. Training programs choose
# per program instead (training_compiler_options).
CPU_XLA_FLAG = f"--{FUSION_EMITTERS_OPTION}=false"
# XLA aborts the process on a flag it does not know; jaxlib 0.11 (seen: 0.11.2) no longer has this one.
LAST_JAXLIB_WITH_FLAG = (0, 10)
DEFAULT_CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "crl", "jax")
MIN_CACHED_COMPILE_SECONDS = 0.5
HEADLESS_GL = "egl"  # Mesa's EGL renders on a CPU machine (llvmpipe), NVIDIA's on a GPU one  # cache only compiles worth the disk round-trip


def _jaxlib_knows_fusion_flag() -> bool:
    version = _jaxlib_version()
    return version is None or version <= LAST_JAXLIB_WITH_FLAG


def _jaxlib_version() -> tuple[int, int] | None:
    try:
        major, minor = importlib.metadata.version("jaxlib").split(".")[:2]
        return int(major), int(minor)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None


def append_xla_flags() -> None:
    """Append crl's CPU XLA flag to the user's XLA_FLAGS (never replacing what they set).

    Only for jaxlib versions that know the flag (up to LAST_JAXLIB_WITH_FLAG), as XLA aborts on
    unknown flags.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if not _jaxlib_knows_fusion_flag():
        return
    if FUSION_EMITTERS_OPTION not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {CPU_XLA_FLAG}".strip()


def training_compiler_options(legacy_fusion: bool) -> dict[str, bool]:
    """XLA options of a program that trains networks (the epoch, the benchmarks' updates) on CPU.

    The newer fusion emitters run the update's elementwise work (LayerNorm, Swish, their gradients, Adam) 2-5x
    faster than the legacy ones the process defaults to (the whole update 1.1-1.3x; docs/performance.md), so a
    training program uses them unless it steps an env that declares `cpu_legacy_fusion` (deep joint chains).
    These options override XLA_FLAGS for that one program. {} off CPU, or where jaxlib no longer has the flag.
    """
    import jax

    if not _jaxlib_knows_fusion_flag() or jax.default_backend() != "cpu":
        return {}
    return {FUSION_EMITTERS_OPTION: not legacy_fusion}


def default_gl_backend() -> None:
    """Headless OpenGL for MuJoCo's renderer: EGL unless the user chose MUJOCO_GL (read when mujoco is imported)."""
    if os.environ.get("MUJOCO_GL") is None and not os.environ.get("DISPLAY"):
        os.environ["MUJOCO_GL"] = HEADLESS_GL
        os.environ.setdefault("PYOPENGL_PLATFORM", HEADLESS_GL)


def enable_compilation_cache(cache_dir: str | None = None) -> str:
    """Turn on JAX's persistent compilation cache (CRL_JAX_CACHE overrides the folder)."""
    import jax

    path = cache_dir or os.environ.get("CRL_JAX_CACHE", DEFAULT_CACHE_DIR)
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_CACHED_COMPILE_SECONDS)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return path
