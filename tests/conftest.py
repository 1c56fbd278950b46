"""Shared test set-up: CPU XLA flags and the persistent compilation cache, before jax loads."""
import crl  # noqa: F401  (appends the CPU XLA flag before jax is imported)
from crl import _platform

_platform.enable_compilation_cache()
