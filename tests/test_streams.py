"""Random streams: every stream of every seed is its own (no key of seed s reappears in seed s+1)."""
import itertools

import jax
import numpy as np

from crl import streams
from tiny_run import tiny_config

SEEDS = range(8)
EPOCHS = 32  # evaluation keys of epochs 0..EPOCHS-1
CHILDREN = (2, 3, 5, 16)  # splits the programs take of a stream key (reset/act keys, per-env keys, SGD keys)


def _keys_of_seed(seed: int) -> dict[str, np.ndarray]:
    """The keys a run draws from: each stream's key (eval: one per epoch, folded in) and its first splits."""
    roots = {name: streams.stream_key(seed, stream) for name, stream in streams.STREAMS.items() if name != "eval"}
    roots.update({f"eval@{epoch}": streams.epoch_eval_key(seed, epoch) for epoch in range(EPOCHS)})
    keys = {}
    for name, key in roots.items():
        keys[name] = np.asarray(key)
        for n in CHILDREN:
            for i, child in enumerate(jax.random.split(key, n)):
                keys[f"{name}/split{n}[{i}]"] = np.asarray(child)
    return keys


def test_streams_of_seeds_0_to_7_are_pairwise_distinct():
    seen: dict[bytes, str] = {}
    for seed in SEEDS:
        for name, key in _keys_of_seed(seed).items():
            label = f"seed {seed} {name}"
            raw = key.tobytes()
            # split(k, n)[i] is the same key for every n > i: count each key once per (seed, stream)
            if raw in seen and seen[raw].split("/")[0] == label.split("/")[0]:
                continue
            assert raw not in seen, f"{label} equals {seen[raw]}"
            seen[raw] = label


def test_old_offset_scheme_collided():
    """The scheme this replaced: seed s's eval key of epoch e was seed s+1's e-th init split."""
    old_eval = jax.random.fold_in(jax.random.PRNGKey(0 + 1), 1)
    old_init = jax.random.split(jax.random.PRNGKey(1), 3)[1]
    assert np.array_equal(old_eval, old_init)  # the bug the streams module exists for
    assert not np.array_equal(streams.epoch_eval_key(0, 1), streams.stream_key(1, streams.PARAMS))


def test_training_state_draws_from_the_named_streams():
    from crl.train import make_trainer

    trainer = make_trainer(tiny_config())
    init, init_params, reset = jax.jit(trainer.init), jax.jit(trainer.networks.init), jax.jit(trainer.env.reset)
    for seed in (0, 1):
        state = init(seed)
        np.testing.assert_array_equal(state.key, streams.stream_key(seed, streams.COLLECT))
        expected = init_params(streams.stream_key(seed, streams.PARAMS))
        jax.tree.map(np.testing.assert_array_equal, state.actor_params, expected["actor"])
        np.testing.assert_array_equal(state.env_state.obs, reset(streams.stream_key(seed, streams.ENV_RESET)).obs)


def test_stream_ids_are_distinct_and_far_from_split_indices():
    ids = list(streams.STREAMS.values())
    assert len(set(ids)) == len(ids)
    assert all(i > 2**16 for i in ids)
    assert all(a != b for a, b in itertools.combinations(ids, 2))
