"""The CRL trainer: one TrainingState pytree, one jitted program per epoch, and the host loop around it."""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import numpy as np

from crl import buffer as rb
from crl import envs, streams
from crl.acting import collect_unroll
from crl.backend import describe_devices, missing_accelerator_warning
from crl.checkpoint import Checkpointer, Restored, buffer_fits
from crl.config import ConfigError, StepPlan, TrainConfig, shape_differences, to_dict, validate
from crl.evaluate import HEADLINE_PREFIX, deterministic_policy, make_evaluator
from crl.agents import Agent, build_agent, get_algorithm
from crl.learners import (Learner, build_learners, learner_actors, learner_metrics, make_learner_evaluator,
                          train_learners)
from crl.offline import data as offline_data
from crl.offline import setup as offline_setup
from crl.offline.data import OfflineData
from crl.offline.ogbench import METRIC_PREFIX as OGBENCH_PREFIX, SUCCESS_METRIC, is_ogbench_name
from crl.networks import param_count
from crl.parallel import batch_constraint, make_mesh
from crl.plan.preflight import check_memory
from crl.preemption import Preempted, StopOnSignals
from crl.programs import RANDOM_PREFIX, Programs, first_seed_scalar, make_programs, per_seed, run_seeds
from crl.progress import EpochProgress, stdout_is_terminal
from crl.run import RunLogger, default_run_dir, format_duration

Metrics = dict[str, jax.Array]
TRAINING_PREFIX = "training/"
HOST_HEADLINE = f"{OGBENCH_PREFIX}{SUCCESS_METRIC}"  # OGBench's success rate (crl.offline.host_eval)
SGD_RATE = "training/sgd_steps_per_s"  # offline runs' throughput (they make no env steps)
NONFINITE_PARAMS = "training/nonfinite_params"  # count of NaN/Inf entries in the params after an epoch


@flax.struct.dataclass
class TrainingState:
    """Everything needed to continue a run: params, optimiser states, buffer, envs, RNG and counters."""

    actor_params: Any
    critic_params: Any
    log_alpha: jax.Array
    actor_opt_state: Any
    critic_opt_state: Any
    alpha_opt_state: Any
    buffer: rb.BufferState
    env_state: Any
    key: jax.Array
    env_steps: jax.Array
    grad_steps: jax.Array
    target_params: Any = None  # target networks of algorithms that keep them (sac, td3); None for crl
    learners: Any = None  # {name: TrainingState (params, optimisers)} of the extra learners (crl.learners), or None


class NonFiniteError(FloatingPointError):
    """A loss or metric became NaN/Inf; training stops instead of writing garbage."""


@dataclasses.dataclass
class Trainer:
    """Pure, jittable pieces of one configured run (the state lives outside, in TrainingState)."""

    cfg: TrainConfig
    plan: StepPlan
    spec: envs.EnvSpec
    eval_spec: envs.EnvSpec
    agent: Agent
    env: Any
    eval_env: Any
    evaluate: Callable
    mesh: jax.sharding.Mesh
    sgd_step: Callable  # the agent's; a field of its own so tests can wrap it (e.g. inject a NaN)
    learners: tuple[Learner, ...] = ()  # extra learners on the collector's batches (cfg.learners)
    evaluate_learners: Callable | None = None  # ({name: actor params}, key) -> {name: eval metrics}
    offline_columns: dict[str, Any] | None = None  # offline: the dataset's host columns (crl.offline.data); None online
    host_eval_env: str | None = None  # an OGBench env, evaluated on the host (crl.offline.host_eval); None: on device
    trace_counts: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def offline(self) -> bool:
        return self.offline_columns is not None

    @property
    def headline(self) -> str:
        """The eval metric of progress lines and the best checkpoint: time at goal, or OGBench's success rate."""
        return HOST_HEADLINE if self.host_eval_env else f"{HEADLINE_PREFIX}{self.eval_spec.headline_metric}"

    @property
    def networks(self) -> Any:
        return self.agent.networks

    # ------------------------------------------------------------------ state
    def init(self, seed) -> TrainingState:
        """A fresh state for run seed `seed` (an int, or traced when seeds are vmapped); keys from crl.streams."""
        key, learner_key = streams.stream_key(seed, streams.COLLECT), streams.stream_key(seed, streams.PARAMS)
        env_key = streams.stream_key(seed, streams.ENV_RESET)
        state = init_learner_state(self.agent, learner_key).replace(key=key)
        if self.learners:  # each from the collector's params key: the same architecture starts from the same params
            state = state.replace(learners={learner.name: init_learner_state(learner.agent, learner_key)
                                            for learner in self.learners})
        if not self.offline:
            buffer = rb.init_buffer(self.cfg.max_replay_size, self.cfg.num_envs, self.spec.obs_dim,
                                    self.spec.action_size)
            state = state.replace(buffer=buffer, env_state=self.env.reset(env_key))
        # Every leaf gets its own buffer: the state is donated to each program, and a leaf may alias
        # another (the cached reset keeps the first obs as both obs and first_obs).
        return jax.tree.map(jnp.copy, state)

    # --------------------------------------------------------------- pieces
    def _collect_and_insert(self, state: TrainingState) -> TrainingState:
        key, collect_key = jax.random.split(state.key)
        env_state, chunk = collect_unroll(self.env, self.agent.explore, state.actor_params,
                                          state.env_state, collect_key, self.cfg.unroll_length)
        return state.replace(env_state=env_state, buffer=rb.insert(state.buffer, chunk), key=key,
                             env_steps=state.env_steps + self.plan.env_steps_per_train_step)

    def _train_step(self, state: TrainingState, data: OfflineData | None = None) -> tuple[TrainingState, Metrics]:
        """Collect and insert (online), sample one window per env (offline: num_envs windows of the dataset),
        relabel (the algorithm's pool), shuffle, scan SGD steps; then every learner's steps on the same batches."""
        if data is None:
            state = self._collect_and_insert(state)
        key, window_key, relabel_key, shuffle_key, sgd_key = jax.random.split(state.key, 5)
        if data is None:
            windows = rb.sample_windows(state.buffer, window_key, self.spec.episode_length)
        else:
            windows = offline_data.sample_windows(data, window_key, self.cfg.num_envs, self.spec.episode_length)
        pool = self.agent.make_pool(windows, relabel_key)
        batches = rb.shuffle_into_batches(pool, shuffle_key, self.cfg.sgd_steps_per_train_step, self.cfg.batch_size)
        batches = batch_constraint(self.mesh)(batches)
        sgd_keys = jax.random.split(sgd_key, self.cfg.sgd_steps_per_train_step)
        state, metrics = jax.lax.scan(self.sgd_step, state.replace(key=key), (batches, sgd_keys))
        metrics = {f"{TRAINING_PREFIX}{k}": v for k, v in jax.tree.map(jnp.mean, metrics).items()}
        if self.learners:
            learners, learner_steps = train_learners(self.learners, state.learners, batches, sgd_keys)
            state = state.replace(learners=learners)
            for name, steps in learner_steps.items():
                metrics.update(learner_metrics(name, {f"{TRAINING_PREFIX}{k}": v for k, v in steps.items()}))
        return state, metrics

    # ------------------------------------------------------- jitted programs
    def prefill(self, state: TrainingState) -> TrainingState:
        """Fill the buffer to min_replay_size steps per env with the initial stochastic actor (offline: nothing)."""
        self._count_trace("prefill")
        if self.offline:
            return state
        return jax.lax.fori_loop(0, self.plan.prefill_collections,
                                 lambda _, s: self._collect_and_insert(s), state)

    def epoch(self, state: TrainingState, data: OfflineData | None = None) -> tuple[TrainingState, Metrics]:
        """One epoch = train_steps_per_epoch training steps, as one program; metrics averaged over it."""
        self._count_trace("epoch")
        state, metrics = jax.lax.scan(lambda s, _: self._train_step(s, data), state, None,
                                      length=self.plan.train_steps_per_epoch)
        metrics = {k: v.mean() for k, v in metrics.items()}
        params = [(s.actor_params, s.critic_params, s.log_alpha, s.target_params)
                  for s in (state, *(state.learners or {}).values())]
        metrics[NONFINITE_PARAMS] = sum(jnp.sum(~jnp.isfinite(p)) for p in jax.tree.leaves(params))
        return state, metrics

    def _count_trace(self, name: str) -> None:
        # Runs only while tracing: counts compilations of each program (tests assert one per run).
        self.trace_counts[name] = self.trace_counts.get(name, 0) + 1


def init_learner_state(agent: Agent, key: jax.Array) -> TrainingState:
    """Fresh params, targets, log_alpha = 0 and optimiser states; no buffer or envs yet (benchmarks use this alone)."""
    opt = agent.optimizers
    params = agent.networks.init(key)
    log_alpha = jnp.zeros((), jnp.float32)
    return TrainingState(
        actor_params=params["actor"], critic_params=params["critic"], log_alpha=log_alpha,
        actor_opt_state=opt.actor.init(params["actor"]), critic_opt_state=opt.critic.init(params["critic"]),
        alpha_opt_state=opt.alpha.init(log_alpha), buffer=None, env_state=None, key=key,
        env_steps=jnp.zeros((), jnp.int32), grad_steps=jnp.zeros((), jnp.int32),
        target_params=agent.init_targets(params))


def known_envs(cfg: TrainConfig) -> list[str]:
    """Registered ids plus the config's env ids that resolve through an id family (e.g. stitching)."""
    known = envs.list_envs() + offline_setup.ogbench_names(cfg)
    for name in {cfg.env, cfg.eval_env} - {None} - set(known):
        try:
            envs.check_name(name)
        except envs.UnknownEnvError:
            continue  # validate() names it, with the closest match
        except ValueError as err:  # a family id with a bad part (layout, stitching config)
            raise ConfigError(str(err)) from None
        known.append(name)
    return known


def make_trainer(cfg: TrainConfig) -> Trainer:
    """Validate `cfg` against the registry and the env spec, then build networks, losses and envs.

    Offline (cfg.offline), `env` becomes the dataset's env and the dataset is loaded (memory-mapped) and checked
    against its spec; trainer.cfg is the config the run uses.
    """
    if cfg.offline:
        cfg = offline_setup.offline_config(cfg)
    known = known_envs(cfg)
    validate(cfg, known_envs=known)  # names an unknown env before the spec lookup below needs it
    get_algorithm(cfg.algorithm)  # an unknown algorithm is named, with the registered ones, before any build
    mesh = make_mesh(cfg)
    spec = offline_setup.env_spec(cfg.env)
    eval_name = cfg.eval_env or cfg.env
    eval_spec = offline_setup.env_spec(eval_name)
    plan = validate(cfg, known_envs=known, episode_length=spec.episode_length)
    if (eval_spec.obs_dim, eval_spec.action_size) != (spec.obs_dim, spec.action_size):
        raise ConfigError(f"eval_env '{eval_name}' has obs/action dims ({eval_spec.obs_dim}, {eval_spec.action_size}) "
                          f"but env '{cfg.env}' has ({spec.obs_dim}, {spec.action_size}); pick an eval env of the "
                          f"same robot (e.g. the _eval layout of the same maze)")
    agent = build_agent(spec, cfg)
    learners = build_learners(cfg, spec, agent)
    columns = None
    if cfg.offline:
        dataset = offline_setup.load_for(cfg, spec)
        columns = offline_data.host_columns(dataset, spec)
        offline_data.check_window(len(columns["traj_id"]), spec.episode_length, cfg.offline)
        plan = offline_plan(plan)
        env = None
    else:
        env = envs.wrap_for_training(envs.make(cfg.env), spec.episode_length, cfg.reset_mode, cfg.num_envs)
    if is_ogbench_name(eval_name):  # evaluated on the host by crl.offline.host_eval (make_programs)
        return Trainer(cfg=cfg, plan=plan, spec=spec, eval_spec=eval_spec, agent=agent, env=env, eval_env=None,
                       evaluate=None, mesh=mesh, sgd_step=agent.sgd_step, learners=learners,
                       offline_columns=columns, host_eval_env=eval_name)
    eval_env = envs.wrap_for_eval(envs.make(eval_name), eval_spec.episode_length, cfg.num_eval_envs)

    def evaluator(of: Agent) -> Callable:
        return make_evaluator(eval_env, eval_spec, deterministic_policy(of.networks.deterministic_action),
                              eval_spec.episode_length)

    return Trainer(cfg=cfg, plan=plan, spec=spec, eval_spec=eval_spec, agent=agent, env=env, eval_env=eval_env,
                   evaluate=evaluator(agent), mesh=mesh, sgd_step=agent.sgd_step, learners=learners,
                   offline_columns=columns, evaluate_learners=make_learner_evaluator(learners, evaluator))


def offline_plan(plan: StepPlan) -> StepPlan:
    """An offline run's step plan: the SGD steps of the online run of the same config, and no env steps."""
    return dataclasses.replace(plan, env_steps_per_train_step=0, prefill_collections=0, prefill_env_steps=0,
                               env_steps_per_epoch=0, total_env_steps=0)


def _roll_back(programs: Programs, ckpt: Checkpointer, bad_state: TrainingState, attempt: int,
               say: Callable) -> tuple[TrainingState, int]:
    """Free the bad state, restore the newest valid checkpoint in its place and fold `attempt` into its RNG
    key(s), so training takes another path. One training state is alive at any time."""
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), bad_state)
    for leaf in jax.tree.leaves(bad_state):
        if not leaf.is_deleted():
            leaf.delete()
    restored = ckpt.restore_latest(abstract, log=say)
    keys = restored.state.key
    keys = jax.random.fold_in(keys, attempt) if keys.ndim == 1 else jax.vmap(jax.random.fold_in, (0, None))(keys, attempt)
    state = restored.state.replace(key=keys)
    if restored.has_buffer:
        return state, restored.epoch
    return programs.prefill(state.replace(buffer=_empty_buffer(abstract.buffer))), restored.epoch


def _empty_buffer(abstract_buffer: Any) -> rb.BufferState:
    """An empty replay buffer (zeros, as rb.init_buffer makes it) on the state's shardings; nothing else is built."""
    return jax.jit(lambda: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), abstract_buffer),
                   out_shardings=jax.tree.map(lambda s: s.sharding, abstract_buffer))()


def _any_process(flag: Any) -> bool:
    """True when the flag is set on any process: every host must stop (and checkpoint) after the same epoch."""
    if jax.process_count() == 1:
        return bool(flag)
    from jax.experimental import multihost_utils

    return bool(np.max(multihost_utils.process_allgather(np.int32(bool(flag)))))


def _check_finite(per_seed_metrics: list[dict[str, float]], seeds: list[int], epoch: int,
                  last_checkpoint: str) -> None:
    bad = []
    for seed, metrics in zip(seeds, per_seed_metrics):
        where = f" (seed {seed})" if len(seeds) > 1 else ""
        bad += [f"{name}{where}" for name, value in metrics.items() if not math.isfinite(value)]
        if metrics.get(NONFINITE_PARAMS, 0) > 0:
            bad.append(f"parameters ({int(metrics[NONFINITE_PARAMS])} entries){where}")
    if bad:
        raise NonFiniteError(f"epoch {epoch}: non-finite {', '.join(bad)}; training stopped and nothing was saved "
                             f"for this epoch. Last good checkpoint: {last_checkpoint}. Lower the learning rates, "
                             f"use compute_dtype=float32, or check the environment for NaN observations")


@dataclasses.dataclass
class TrainResult:
    state: TrainingState
    history: list[dict[str, float]]
    run_dir: Any
    trainer: Trainer
    seed_histories: list[list[dict[str, float]]] = dataclasses.field(default_factory=list)  # one per seed


def train(cfg: TrainConfig, trainer: Trainer | None = None, print_fn: Callable[[str], None] | None = print) -> TrainResult:
    """Host loop: compile (timed apart), prefill or resume, then per epoch: train, evaluate, log, checkpoint.

    A run directory that already holds checkpoints is resumed from the newest one that loads. In a
    multi-host run every process runs this loop on its shards; only process 0 prints and writes logs.
    """
    trainer = trainer or make_trainer(cfg)
    cfg = trainer.cfg  # offline, env is the dataset's
    writer = jax.process_index() == 0
    say = print_fn if cfg.progress and print_fn and writer else (lambda _: None)
    run_dir = Path(cfg.run_dir or default_run_dir(cfg))
    ckpt = Checkpointer(run_dir, cfg.keep_checkpoints, cfg.keep_best_checkpoint) if cfg.checkpoint_every else None
    saved = ckpt.saved_config() if ckpt else None
    changed = shape_differences(saved, cfg) if saved else []
    if changed:  # refused before minutes of compiling
        raise ConfigError(f"cannot resume {run_dir} with a config that changes shapes: {'; '.join(changed)}. "
                          "Keep these fields as they were, or start a new run directory")
    programs = make_programs(trainer)
    abstract = jax.eval_shape(programs.init)  # the state's shapes and shardings; nothing allocated
    # compiled from the abstract state (training runs these very programs); refuses a run that cannot fit
    programs = check_memory(trainer, programs, abstract, say)
    programs.data = programs.place_data()  # offline: the dataset on the device(s), once
    resumed = ckpt.restore_latest(abstract, log=say) if ckpt and ckpt.steps() else None
    if resumed and not resumed.has_buffer:
        resumed.state = resumed.state.replace(buffer=_empty_buffer(abstract.buffer))
    state = None if resumed else programs.init()  # one training state: the restored one or a fresh one
    shapes = jax.eval_shape(trainer.networks.init, jax.random.PRNGKey(0))  # one seed's params, never allocated
    params_info = {"critic_params": param_count(shapes["critic"]), "actor_params": param_count(shapes["actor"])}
    logger = RunLogger(run_dir, cfg, trainer.plan, extra={"parameters": params_info},
                       resume_epoch=resumed.epoch if resumed else None, seeds=run_seeds(cfg), writer=writer)
    try:
        with StopOnSignals() as stop:
            return _run(cfg, trainer, programs, state, resumed, logger, ckpt, stop, say, params_info)
    finally:
        logger.close()
        if ckpt:
            ckpt.close()


def _run(cfg: TrainConfig, trainer: Trainer, programs: Programs, state: TrainingState, resumed: Restored | None,
         logger: RunLogger, ckpt: Checkpointer | None, stop: StopOnSignals, say: Callable,
         params_info: dict[str, int]) -> TrainResult:
    plan, seeds = trainer.plan, run_seeds(cfg)
    say(f"crl: {describe_devices()}")
    warning = missing_accelerator_warning(jax.default_backend())
    if warning:
        say(f"crl: {warning}")
    say(f"crl: env {cfg.env} (eval {trainer.eval_spec.name}), critic D{cfg.critic_depth}xW{cfg.critic_width} "
        f"({params_info['critic_params']:,} params), actor D{cfg.actor_depth}xW{cfg.actor_width} "
        f"({params_info['actor_params']:,}), run dir {logger.run_dir}")
    if trainer.offline:
        traj_ids = np.asarray(trainer.offline_columns["traj_id"])
        say(f"crl: offline on {cfg.offline}: {len(traj_ids):,} transitions in "
            f"{offline_data.count_trajectories(traj_ids):,} trajectories; {plan.train_steps_per_epoch} "
            f"training steps/epoch x {cfg.num_epochs} epochs of {cfg.sgd_steps_per_train_step} SGD steps on "
            f"{cfg.num_envs} windows each; no env steps")
    else:
        say(f"crl: {plan.train_steps_per_epoch} training steps/epoch x {cfg.num_epochs} epochs, "
            f"{plan.env_steps_per_train_step:,} env steps and {cfg.sgd_steps_per_train_step} SGD steps per training "
            f"step, prefill {plan.prefill_env_steps:,}; real total {plan.total_env_steps:,} env steps "
            f"(asked {cfg.total_env_steps:,})")
    for learner in trainer.learners:
        say(f"crl: learner {learner.name}: {learner.cfg.algorithm}, critic D{learner.cfg.critic_depth}"
            f"xW{learner.cfg.critic_width}, actor D{learner.cfg.actor_depth}xW{learner.cfg.actor_width}, on the "
            f"collector's batches")
    if len(seeds) > 1:
        say(f"crl: seeds {seeds} vmapped in one program (metrics in {logger.run_dir}/seeds/<seed>)")
    if trainer.mesh.size > 1:
        say(f"crl: data mesh of {trainer.mesh.size} devices over {jax.process_count()} process(es)")
    t0 = time.perf_counter()
    say(f"crl: compiled prefill, epoch and evaluation in {programs.compile_s:.1f} s")

    history = logger.history
    headline = trainer.headline

    def evaluate(epoch_index: int, state: TrainingState, last_checkpoint: str) -> list[dict[str, float]]:
        """Per-seed eval metrics, checked for NaN/Inf like training metrics (same error, same rollback)."""
        t_eval = time.perf_counter()
        metrics = per_seed(programs.evaluate(state.actor_params, epoch_index), len(seeds))
        if programs.evaluate_learners is not None:
            by_learner = programs.evaluate_learners(learner_actors(state), epoch_index)
            for name, learner_eval in by_learner.items():
                for seed_metrics, learner_seed in zip(metrics, per_seed(learner_eval, len(seeds))):
                    seed_metrics.update(learner_metrics(name, learner_seed))
        eval_s = time.perf_counter() - t_eval
        _check_finite(metrics, seeds, epoch_index, last_checkpoint)
        for seed_metrics in metrics:
            seed_metrics["time/eval_s"] = eval_s
        return metrics

    def log(epoch_index: int, state: TrainingState, *per_seed_parts: list[dict[str, Any]]) -> dict[str, float]:
        records = [{k: v for part in parts for k, v in part.items()} for parts in zip(*per_seed_parts)]
        for record in records:
            record.update(epoch=epoch_index, grad_steps=first_seed_scalar(state.grad_steps))
        return logger.log(first_seed_scalar(state.env_steps), records)

    if resumed:
        state, start_epoch = resumed.state, resumed.epoch
        say(f"crl: resumed from {resumed.path} (epoch {start_epoch}, {first_seed_scalar(state.env_steps):,} env steps)")
        if not resumed.has_buffer:
            say(f"crl: the checkpoint holds no replay buffer (larger than checkpoint_buffer_mb); refilling it with "
                f"{plan.prefill_env_steps:,} env steps before training continues")
            state = programs.prefill(state)
    else:
        start_epoch, t_prefill = 0, time.perf_counter()
        state = programs.prefill(state)
        jax.block_until_ready(state.env_steps)
        timing = {"time/compile_s": programs.compile_s, "time/prefill_s": time.perf_counter() - t_prefill}
        extra = [dict(timing) for _ in seeds]
        if cfg.random_baseline:
            for seed_extra, random in zip(extra, per_seed(programs.random_baseline(), len(seeds))):
                seed_extra.update({k.replace("eval/", RANDOM_PREFIX): v for k, v in random.items()})
        record = log(0, state, evaluate(0, state, "none yet"), extra)
        random_key = headline.replace('eval/', RANDOM_PREFIX)
        random_note = f"; uniform random policy {record[random_key]:.2f}" if random_key in record else ""
        stage = "before training" if trainer.offline else "prefill done"
        say(f"crl: {stage}; initial policy {headline.removeprefix('eval/')} = {record[headline]:.2f}{random_note}")

    last_checkpoint = str(resumed.path) if resumed else "none yet"
    train_time, epochs_run, rollbacks, epoch_index = 0.0, 0, 0, start_epoch
    progress = EpochProgress(say, cfg.num_epochs, epoch_index, headline, programs.compile_s,
                             live=say is print and stdout_is_terminal())
    try:
        while epoch_index < cfg.num_epochs:
            epoch_index += 1
            t_epoch = time.perf_counter()
            state, metrics = programs.run_epoch(state)
            metrics = per_seed(metrics, len(seeds))
            epoch_s = time.perf_counter() - t_epoch
            train_time, epochs_run = train_time + epoch_s, epochs_run + 1
            try:
                _check_finite(metrics, seeds, epoch_index, last_checkpoint)
                eval_metrics = evaluate(epoch_index, state, last_checkpoint)
            except NonFiniteError as err:
                if rollbacks >= cfg.nan_rollbacks or not (ckpt and ckpt.steps()):
                    raise
                rollbacks += 1
                state, epoch_index = _roll_back(programs, ckpt, state, rollbacks, say)
                logger.truncate(epoch_index)
                say(f"crl: {err}\ncrl: rolled back to epoch {epoch_index} with a new RNG key "
                    f"(rollback {rollbacks} of {cfg.nan_rollbacks})")
                continue
            for seed_metrics in metrics:
                if trainer.offline:
                    sgd_steps = plan.train_steps_per_epoch * cfg.sgd_steps_per_train_step * len(seeds)
                    seed_metrics[SGD_RATE] = sgd_steps / epoch_s
                else:
                    seed_metrics["training/sps"] = plan.env_steps_per_epoch * len(seeds) / epoch_s
                seed_metrics["time/epoch_s"] = epoch_s
            record = log(epoch_index, state, eval_metrics, metrics)
            eta = (train_time + record["time/eval_s"] * epochs_run) / epochs_run * (cfg.num_epochs - epoch_index)
            progress.update(epoch_index, record, eta)
            stopping = _any_process(stop.requested)
            due = epoch_index % max(cfg.checkpoint_every, 1) == 0 or epoch_index == cfg.num_epochs or stopping
            if ckpt and due:
                path = ckpt.save(epoch_index, state, {"config": to_dict(cfg)}, record[headline],
                                 include_buffer=buffer_fits(state, cfg.checkpoint_buffer_mb))
                last_checkpoint = str(path)
            if stopping and epoch_index < cfg.num_epochs:  # a stop during the last epoch: the run is done
                raise Preempted(f"stopped by {stop.requested or 'another process'} after epoch {epoch_index}; checkpoint {last_checkpoint}. "
                                f"Continue with: crl train --resume {logger.run_dir}")
    finally:
        progress.close()
    say(f"crl: done in {format_duration(time.perf_counter() - t0)}; metrics in {logger.run_dir}")
    return TrainResult(state=state, history=history, run_dir=logger.run_dir, trainer=trainer,
                       seed_histories=[log.history for log in logger.seed_logs])
