"""Algorithms of the shared trainer: CRL and the paper's baselines, one module each, plus a public registry.

`crl.agents.register_algorithm(name, build)` adds one from user code (docs/algorithms.md shows how).
"""
from crl.agents.base import Agent, Optimizers, apply_updates, make_optimizers, masked_mean, polyak, select
from crl.agents.registry import (Algorithm, UnknownAlgorithmError, algorithm_names, build_agent, get_algorithm,
                                 register_algorithm)
from crl.agents import contrastive, sac, td3, imitation  # noqa: F401,I001  (registers the built-ins, in this order)

__all__ = ["Agent", "Algorithm", "Optimizers", "UnknownAlgorithmError", "algorithm_names", "apply_updates",
           "build_agent", "get_algorithm", "make_optimizers", "masked_mean", "polyak", "register_algorithm", "select"]
