"""The named random streams of a run, each derived from the run seed by `fold_in` of its own constant.

Seeds are hashed, never offset: with jax's threefry, `fold_in(PRNGKey(k), i)` equals
`split(PRNGKey(k), n)[i]`, so keys built as PRNGKey(seed + offset) or from small split indices made
seed s's evaluation keys seed s+1's init keys. Folding a distinct constant per stream into
PRNGKey(seed) keeps every stream of every seed apart.
"""
from __future__ import annotations

import zlib

import jax


def _stream_id(name: str) -> int:
    """A stable 31-bit constant per stream name (far from the small indices that `split` uses)."""
    return zlib.crc32(f"crl/{name}".encode()) & 0x7FFFFFFF


PARAMS = _stream_id("params")  # network initialisation
ENV_RESET = _stream_id("env_reset")  # the first reset of the training envs
COLLECT = _stream_id("collect")  # the carried key: collection, window sampling, relabelling, SGD noise
EVAL = _stream_id("eval")  # evaluation, folded with the epoch number
RANDOM_BASELINE = _stream_id("random_baseline")  # the uniform-random-policy evaluation
STREAMS = {"params": PARAMS, "env_reset": ENV_RESET, "collect": COLLECT, "eval": EVAL,
           "random_baseline": RANDOM_BASELINE}


def stream_key(seed, stream: int) -> jax.Array:
    """The key of one stream of the run seeded `seed` (a Python int or a traced integer)."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), stream)


def epoch_eval_key(seed, epoch) -> jax.Array:
    """The evaluation key of a run at an epoch: derived, not carried, so resumes and `crl eval` reproduce it."""
    return jax.random.fold_in(stream_key(seed, EVAL), epoch)
