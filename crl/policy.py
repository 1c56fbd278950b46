"""Policies outside training: evaluate a saved checkpoint, export the actor alone, load it for inference."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp

from crl import envs
from crl.checkpoint import Checkpointer
from crl.config import TrainConfig, from_dict, to_dict
from crl.streams import epoch_eval_key
from crl.agents import build_agent

ACTOR_PARAMS_FILE = "actor.msgpack"
ACTOR_META_FILE = "actor.json"
ACTOR_FIELDS = ("actor_params", "env_steps", "grad_steps")  # what evaluating or exporting a policy reads
RUNS_DIR = "runs"  # where `crl train` writes a run without --run-dir


def load_run_config(run_dir: str | Path) -> TrainConfig:
    """The resolved config a run was started with (RUN_DIR/config.yaml), pointed at that run directory."""
    import yaml

    from crl.config import ConfigError

    if not Path(run_dir).is_dir():
        raise ConfigError(f"{run_dir} does not exist (or is not a directory); check the path, e.g. `ls {RUNS_DIR}/` "
                          "lists the runs `crl train` wrote without --run-dir")
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        raise ConfigError(f"{run_dir}: no config.yaml there; is it a crl run directory?")
    values = dict(yaml.safe_load(path.read_text())["config"])
    values["run_dir"] = str(run_dir)
    return from_dict(values, source=str(path))


def restore_run(run_dir: str | Path, epoch: int | None = None, fields: tuple[str, ...] = ACTOR_FIELDS,
                **overrides: Any):
    """(trainer, restored checkpoint) of a run; overrides may change evaluation fields (e.g. num_eval_envs).

    Only the state's `fields` are read (the others, the replay buffer above all, are None and never read
    from disk), onto the shapes and shardings of the run's state, which is never allocated. The state of
    a K-seed run carries a leading seed axis (seed k = the run's seed + k).
    """
    from crl.programs import make_programs
    from crl.train import make_trainer

    cfg = dataclasses.replace(load_run_config(run_dir), **overrides)
    trainer = make_trainer(cfg)
    ckpt = Checkpointer(run_dir, cfg.keep_checkpoints, cfg.keep_best_checkpoint)
    try:
        restored = ckpt.restore_latest(jax.eval_shape(make_programs(trainer).init), epoch=epoch, fields=fields)
    finally:
        ckpt.close()
    return trainer, restored


def evaluate_checkpoint(run_dir: str | Path, epoch: int | None = None, seed: int | None = None,
                        **overrides: Any) -> dict:
    """Evaluation metrics of a saved actor (deterministic policy, fresh resets), with the epoch evaluated.

    Without `seed` the run's own key for that epoch is used, so the logged evaluation is reproduced.
    """
    from crl.programs import over_seeds, per_seed, run_seeds

    trainer, restored = restore_run(run_dir, epoch, **overrides)
    cfg = trainer.cfg

    def evaluate(run_seed, params):
        key = epoch_eval_key(run_seed, restored.epoch) if seed is None else jax.random.PRNGKey(seed)
        return trainer.evaluate(params, key)

    if trainer.host_eval_env:  # OGBench: its seeded episodes on the host (crl.offline.host_eval)
        from crl.programs import make_programs

        host = make_programs(trainer).evaluate(restored.state.actor_params, restored.epoch)
        metrics = per_seed(host, cfg.num_seeds)
    else:
        metrics = per_seed(jax.jit(over_seeds(evaluate, cfg))(restored.state.actor_params), cfg.num_seeds)
    header = {"epoch": restored.epoch, "eval_env": trainer.eval_spec.name}
    if cfg.num_seeds == 1:
        return {**header, **metrics[0]}
    return {**header, "seeds": dict(zip(run_seeds(cfg), metrics))}


def export_actor(run_dir: str | Path, out_dir: str | Path, epoch: int | None = None,
                 seed: int | None = None) -> Path:
    """Write the actor's params (msgpack) and what rebuilds it (config, env spec) to out_dir.

    For a K-seed run, `seed` picks which seed's actor (default: the run's first seed).
    """
    from crl.config import ConfigError
    from crl.programs import run_seeds

    trainer, restored = restore_run(run_dir, epoch)
    seeds, params = run_seeds(trainer.cfg), restored.state.actor_params
    seed = seeds[0] if seed is None else seed
    if seed not in seeds:
        raise ConfigError(f"seed {seed} is not one of this run's seeds {seeds}; pick one of them")
    if len(seeds) > 1:
        params = jax.tree.map(lambda x: x[seeds.index(seed)], params)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / ACTOR_PARAMS_FILE).write_bytes(flax.serialization.to_bytes(params))
    config = {**to_dict(trainer.cfg), "seed": seed, "num_seeds": 1}
    meta = {"config": config, "env": trainer.spec.name, "epoch": restored.epoch,
            "obs_dim": trainer.spec.obs_dim, "action_size": trainer.spec.action_size}
    (out / ACTOR_META_FILE).write_text(json.dumps(meta, indent=1))
    return out


def parameter_count(params: Any) -> int:
    """Number of scalars in a parameter tree."""
    return sum(int(leaf.size) for leaf in jax.tree.leaves(params))


@dataclasses.dataclass(frozen=True, repr=False)
class ExportedActor:
    """The actor of a run, loaded from export_actor's folder: actor(obs) -> action in [-1, 1] (see load_actor)."""

    networks: Any
    params: Any
    meta: dict

    @property
    def env(self) -> str:
        return self.meta["env"]

    @property
    def obs_dim(self) -> int:
        return self.networks.state_dim + self.networks.goal_dim

    def check_obs(self, obs: jax.Array) -> jax.Array:
        """obs as an array whose last axis is concat(state, goal); a ValueError naming the sizes otherwise."""
        obs = jnp.asarray(obs)
        if obs.ndim == 0 or obs.shape[-1] != self.obs_dim:
            raise ValueError(
                f"{self.env}'s actor takes observations of size {self.obs_dim} = state_dim {self.networks.state_dim}"
                f" + goal_dim {self.networks.goal_dim} (concat(state, goal) on the last axis), got shape "
                f"{tuple(obs.shape)}; build obs as jnp.concatenate([state, goal], axis=-1)")
        return obs

    def __call__(self, obs: jax.Array) -> jax.Array:
        """The deterministic action tanh(mu(obs)), what evaluation and `crl eval` use."""
        return jax.jit(self.networks.deterministic_action)(self.params, self.check_obs(obs))

    def sample(self, obs: jax.Array, key: jax.Array) -> jax.Array:
        """An action sampled as in training, tanh(mu + sigma * eps), for the same obs layout as __call__."""
        action, _ = jax.jit(self.networks.sample_action)(self.params, self.check_obs(obs), key)
        return action

    def __repr__(self) -> str:
        cfg = self.meta["config"]
        return (f"ExportedActor(env={self.env!r}, epoch={self.meta['epoch']}, actor depth {cfg['actor_depth']} "
                f"x width {cfg['actor_width']}, obs {self.obs_dim} = state {self.networks.state_dim} + goal "
                f"{self.networks.goal_dim}, action {self.networks.action_size}, "
                f"{parameter_count(self.params):,} parameters)")


def load_actor(path: str | Path) -> ExportedActor:
    """The actor `crl eval --export-actor DIR` (export_actor) wrote to DIR, rebuilt without critic, buffer or optimiser.

    `actor(obs)` is the deterministic policy tanh(mu(obs)) that evaluation scores; `actor.sample(obs, key)` draws
    tanh(mu + sigma * eps) as in training. obs is concat(state, goal) on its last axis: the env's state_dim
    entries, then the commanded goal's goal_dim entries, in the space of state[goal_indices] (point mazes: x, y
    then goal x, y; `crl.envs.spec(actor.env)` gives the sizes and indices). Leading axes are batch axes: an
    obs of shape (obs_dim,) gives (action_size,), (B, obs_dim) gives (B, action_size). Actions lie in [-1, 1].
    A wrong obs size raises a ValueError naming the expected one; `print(actor)` shows env, sizes, parameters.
    """
    path = Path(path)
    meta = json.loads((path / ACTOR_META_FILE).read_text())
    cfg = from_dict(meta["config"])
    networks = build_agent(envs.spec(meta["env"]), cfg).networks
    template = networks.init(jax.random.PRNGKey(0))["actor"]
    params = flax.serialization.from_bytes(template, (path / ACTOR_PARAMS_FILE).read_bytes())
    return ExportedActor(networks=networks, params=params, meta=meta)
