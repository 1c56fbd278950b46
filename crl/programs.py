"""The jitted programs of a run: one code path for 1 or K seeds (vmapped) on 1..N devices (and hosts).

With num_seeds = K > 1 every leaf of the training state gains a leading seed axis and each program is
vmapped over it; seed k is the run `seed + k` would be alone (same keys, same evaluation keys). The state
lives on the ('data',) mesh of `crl.parallel`; inputs and outputs are pinned to its shardings.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from crl import streams
from crl._platform import training_compiler_options
from crl.evaluate import make_evaluator, uniform_random_policy
from crl.learners import learner_actors
from crl.offline import data as offline_data
from crl.offline.host_eval import ogbench_programs
from crl.parallel import replicated, state_shardings

RANDOM_PREFIX = "eval/random_"


def run_seeds(cfg) -> list[int]:
    """The seeds a run trains: seed, seed + 1, ..., seed + num_seeds - 1."""
    return [cfg.seed + k for k in range(cfg.num_seeds)]


def over_seeds(fn: Callable, cfg, arg_axes: tuple | None = None) -> Callable:
    """fn(seed, *args) for the run's seed, or vmapped over its K seeds (args batched on axis 0 unless arg_axes)."""
    if cfg.num_seeds == 1:
        return lambda *args: fn(cfg.seed, *args)
    seeds = cfg.seed + jnp.arange(cfg.num_seeds)

    def batched(*args):
        axes = (0, *(arg_axes if arg_axes is not None else (0,) * len(args)))
        return jax.vmap(fn, in_axes=axes)(seeds, *args)

    return batched


@dataclasses.dataclass
class Programs:
    """init() -> state; prefill(state); epoch(state, *data) -> (state, metrics); evaluate(actor, epoch); random();
    evaluate_learners({name: actor}, epoch) where the run has learners.

    `data` is what the epoch takes besides the state: () online, (OfflineData,) offline (one copy, shared by seeds):
    abstract until `place_data()` puts it on the device(s), so planning and compiling allocate nothing.
    """

    init: Callable
    prefill: Callable
    epoch: Callable
    evaluate: Callable
    random_baseline: Callable
    evaluate_learners: Callable | None = None
    data: tuple = ()
    place_data: Callable[[], tuple] = tuple
    compile_s: float = 0.0

    def compile(self, state: Any) -> "Programs":
        """Compile ahead of time (so compile time is measured apart from the first epoch); `state` may be abstract."""
        t0 = time.perf_counter()
        compiled = dataclasses.replace(
            self, prefill=self.prefill.lower(state).compile(), epoch=self.epoch.lower(state, *self.data).compile(),
            evaluate=self.evaluate.lower(state.actor_params, 0).compile())
        if self.evaluate_learners is not None:
            compiled.evaluate_learners = self.evaluate_learners.lower(learner_actors(state), 0).compile()
        compiled.compile_s = time.perf_counter() - t0
        return compiled

    def run_epoch(self, state: Any) -> tuple[Any, Any]:
        return self.epoch(state, *self.data)


def make_programs(trainer) -> Programs:
    """Jit the trainer's pure pieces over the run's seeds, with the state's shardings on the trainer's mesh."""
    cfg, mesh = trainer.cfg, trainer.mesh
    init = over_seeds(trainer.init, cfg)
    shardings = state_shardings(jax.eval_shape(init), mesh, cfg.num_envs, seed_axis=cfg.num_seeds > 1)
    metrics_sharding = replicated(mesh)
    spec = trainer.eval_spec
    data, data_shardings, place_data = (), (), tuple
    if trainer.offline:  # placed once, replicated, never donated: every epoch and every seed reads the same copy
        data = (offline_data.abstract(trainer.offline_columns, metrics_sharding),)
        data_shardings = (jax.tree.map(lambda _: metrics_sharding, data[0]),)
        place_data = lambda: (offline_data.place(trainer.offline_columns, metrics_sharding),)  # noqa: E731
    epoch = over_seeds(lambda _, state, *data: trainer.epoch(state, *data), cfg, arg_axes=(0,) + (None,) * len(data))
    if trainer.host_eval_env:  # OGBench's gym envs: evaluated on the host
        evaluate, evaluate_learners, random_baseline = ogbench_programs(
            trainer.host_eval_env, trainer.agent, trainer.learners, run_seeds(cfg), cfg.ogbench_eval_episodes)
    else:
        evaluate, evaluate_learners, random_baseline = _device_evaluation(trainer, shardings, metrics_sharding)
    return Programs(
        init=jax.jit(init, out_shardings=shardings),
        prefill=jax.jit(over_seeds(lambda _, state: trainer.prefill(state), cfg), in_shardings=(shardings,),
                        out_shardings=shardings, donate_argnums=0),
        epoch=jax.jit(epoch, in_shardings=(shardings, *data_shardings), out_shardings=(shardings, metrics_sharding),
                      donate_argnums=0, compiler_options=epoch_compiler_options(trainer)),
        evaluate=evaluate, random_baseline=random_baseline, evaluate_learners=evaluate_learners, data=data,
        place_data=place_data)


def epoch_compiler_options(trainer) -> dict[str, bool]:
    """The epoch's XLA options: the CPU fusion emitters that suit the update, unless the epoch steps an env whose
    physics needs the legacy ones, or this process drives several devices (forced host devices): there the newer
    emitters once left an in-process all-gather waiting past XLA's 40 s rendezvous limit (CI, 4 devices on 2 cores),
    so those runs keep the emitters they were validated with. Prefill and evaluation keep the process default."""
    env_needs_legacy = not trainer.offline and trainer.spec.cpu_legacy_fusion
    return training_compiler_options(legacy_fusion=env_needs_legacy or len(trainer.mesh.local_devices) > 1)


def _device_evaluation(trainer, shardings: Any, metrics_sharding: Any) -> tuple[Callable, Callable | None, Callable]:
    """Jitted (evaluate, evaluate_learners or None, random_baseline) over the run's seeds, in the eval env."""
    cfg, spec = trainer.cfg, trainer.eval_spec
    random_eval = make_evaluator(trainer.eval_env, spec, uniform_random_policy(spec.action_size),
                                 spec.episode_length)
    evaluate = over_seeds(lambda seed, params, epoch: trainer.evaluate(params, streams.epoch_eval_key(seed, epoch)),
                          cfg, arg_axes=(0, None))
    random_baseline = over_seeds(
        lambda seed: random_eval(None, streams.stream_key(seed, streams.RANDOM_BASELINE)), cfg)
    evaluate_learners = None
    if trainer.learners:  # every learner's actor on the collector's evaluation episodes (same keys)
        evaluate_learners = jax.jit(over_seeds(
            lambda seed, actors, epoch: trainer.evaluate_learners(actors, streams.epoch_eval_key(seed, epoch)),
            cfg, arg_axes=(0, None)), in_shardings=(learner_actors(shardings), metrics_sharding),
            out_shardings=metrics_sharding)
    return (jax.jit(evaluate, in_shardings=(shardings.actor_params, metrics_sharding), out_shardings=metrics_sharding),
            evaluate_learners, jax.jit(random_baseline, out_shardings=metrics_sharding))


def per_seed(metrics: dict[str, Any], num_seeds: int) -> list[dict[str, float]]:
    """Host floats, one dict per seed (metrics of a vmapped program carry a leading seed axis)."""
    host = {k: np.asarray(v) for k, v in jax.device_get(metrics).items()}
    if num_seeds == 1:
        return [{k: float(v) for k, v in host.items()}]
    return [{k: float(v[i]) for k, v in host.items()} for i in range(num_seeds)]


def first_seed_scalar(value: jax.Array) -> int:
    """A counter shared by all seeds (env steps, SGD steps) as a Python int."""
    return int(np.asarray(jax.device_get(value)).reshape(-1)[0])
