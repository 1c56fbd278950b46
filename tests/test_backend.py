"""The start-up backend line and the 'accelerator visible, jax on CPU' warning (probes faked)."""
import jax

from crl import backend


def test_warns_with_the_install_command_when_a_gpu_is_visible_but_jax_is_on_cpu():
    warning = backend.missing_accelerator_warning("cpu", {"gpu": lambda: True, "tpu": lambda: False})
    assert warning is not None and "GPU is visible" in warning and "jax runs on the CPU" in warning
    assert "make install-gpu" in warning and "requirements-cuda12.lock" in warning


def test_tpu_visible_names_the_tpu_install():
    warning = backend.missing_accelerator_warning("cpu", {"gpu": lambda: False, "tpu": lambda: True})
    assert warning is not None and "make install-tpu" in warning


def test_no_warning_without_accelerator_or_when_jax_uses_it():
    assert backend.missing_accelerator_warning("cpu", {"gpu": lambda: False, "tpu": lambda: False}) is None
    assert backend.missing_accelerator_warning("gpu", {"gpu": lambda: True}) is None


def test_nvidia_probe_reads_nvidia_smi(monkeypatch):
    class Done:
        returncode, stdout = 0, "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-x)\n"

    monkeypatch.setattr(backend.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(backend.subprocess, "run", lambda *a, **k: Done())
    assert backend.nvidia_gpu_visible()
    Done.returncode = 9  # a driver that fails to answer
    assert not backend.nvidia_gpu_visible()
    monkeypatch.setattr(backend.shutil, "which", lambda name: None)
    assert not backend.nvidia_gpu_visible()


def test_describe_devices_names_backend_and_count():
    line = backend.describe_devices()
    assert line.startswith(f"jax {jax.__version__} on {jax.default_backend()}: {len(jax.devices())} device")
