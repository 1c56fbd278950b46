"""Typed training config, YAML presets and validation that runs before anything compiles."""
from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Literal

import yaml

from crl.env_names import unknown_env_hint

Energy = Literal["norm", "l2", "dot", "cosine", "mrn"]
ContrastiveLoss = Literal["fwd_infonce", "bwd_infonce", "sym_infonce", "binary_nce"]
Activation = Literal["swish", "relu"]
DType = Literal["float32", "bfloat16"]
Precision = Literal["default", "high", "highest"]
LogitsForm = Literal["matmul", "broadcast"]
BlockResiduals = Literal["dense", "all"]
ResetMode = Literal["fresh", "cached"]
BLOCK_LAYERS = 4  # Dense layers per residual block (reference section 3)
# The algorithms crl.agents registers itself, in its order (jax-free, for pre-launch checks of sweeps)
BUILTIN_ALGORITHMS = ("crl", "sac", "sac_her", "td3", "td3_her", "gcbc", "gcsl")


@dataclasses.dataclass
class TrainConfig:
    """Every knob of a CRL run. Defaults are the paper's (Table 7) unless noted."""

    env: str = "ant"  # registered environment id (`crl envs` lists them)
    eval_env: str | None = None  # environment to evaluate on; None: `env`
    reset_mode: ResetMode = "fresh"  # 'fresh': new start/goal per episode; 'cached': the reference (one goal per env for the run)

    total_env_steps: int = 100_000_000  # env-step budget, prefill included (the real total is logged)
    num_epochs: int = 100  # one evaluation and log line per epoch
    num_envs: int = 512  # parallel training environments
    unroll_length: int = 62  # env steps per env per training step
    max_replay_size: int = 10_000  # buffer capacity in steps per env (FIFO)
    min_replay_size: int = 1_000  # steps per env before training; >= the episode length (one window)
    batch_size: int = 512  # transitions per SGD step; also the number of InfoNCE negatives + 1
    sgd_steps_per_train_step: int = 800  # SGD steps per training step (paper: UTD 1:40)
    discount: float = 0.99  # geometric law of future-goal offsets (crl, gcbc); the TD discount of sac and td3
    num_eval_envs: int = 128  # evaluation episodes per epoch

    actor_lr: float = 3e-4  # Adam learning rate of the actor
    critic_lr: float = 3e-4  # Adam learning rate of both critic encoders
    alpha_lr: float = 3e-4  # Adam learning rate of log(alpha), the entropy temperature
    logsumexp_penalty: float = 0.1  # c in c * mean(logsumexp_j L_ij)^2
    energy: Energy = "norm"  # critic energy f(s,a,g); 'norm' = -||phi - psi||_2 (paper)
    contrastive_loss: ContrastiveLoss = "fwd_infonce"  # critic loss over the B x B logits
    # B x B logits: 'matmul' (norms + one matmul, equal goals tied exactly: 3x faster at batch 512) or
    # 'broadcast' (the reference's elementwise B x B x repr_dim form); the same within float32 rounding
    # (docs/performance.md)
    logits_form: LogitsForm = "matmul"
    target_entropy_scale: float = 0.5  # target entropy = -scale * action_size

    # 'crl' (the paper) or a baseline: 'sac', 'sac_her', 'td3', 'td3_her', 'gcbc', 'gcsl'; or one registered
    # from user code (docs/algorithms.md). Depths, widths, learning rates and discount apply to every algorithm.
    algorithm: str = "crl"
    tau: float = 0.005  # sac, td3: Polyak rate of the target networks (brax's and JaxGCRL's SAC and TD3)
    her_ratio: float = 0.8  # sac_her, td3_her: fraction of goals relabelled to future achieved goals (HER 'future', k = 4)
    policy_delay: int = 2  # td3: actor and target updates on every d-th SGD step (TD3 paper, JaxGCRL)
    target_noise: float = 0.2  # td3: std of the target-policy smoothing noise (TD3 paper, JaxGCRL)
    target_noise_clip: float = 0.5  # td3: the smoothing noise is clipped to +- this (TD3 paper, JaxGCRL)
    exploration_noise: float = 0.4  # td3: std of the Gaussian noise on collected actions (JaxGCRL's TD3)
    bc_weight: float = 0.0  # crl: weight of a behaviour-cloning term -log pi(a_data | s, g) in the actor loss (offline CRL, as OGBench's); 0: the paper's actor

    # Offline training and extra learners (docs/offline.md)
    offline: str | None = None  # an OGBench-layout dataset (.npz): train on it, no collection; env from its sidecar (or eval_env)
    ogbench_eval_episodes: int = 20  # eval_env ogbench:...: episodes per OGBench task goal (OGBench's papers use 20)
    learners: tuple[str, ...] = ()  # extra learners on the collector's batches, e.g. "d16: critic_depth=16 actor_depth=16"

    critic_depth: int = 4  # Dense layers inside residual blocks of each critic encoder (multiple of 4)
    critic_width: int = 256  # hidden width of the critic encoders
    actor_depth: int = 4  # Dense layers inside residual blocks of the actor (multiple of 4)
    actor_width: int = 256  # hidden width of the actor
    repr_dim: int = 64  # dimension of phi(s,a) and psi(g)
    activation: Activation = "swish"  # hidden activation ('relu' is the paper's ablation)
    remat: bool = False  # rematerialise each residual block in the backward pass (memory)
    block_residuals: BlockResiduals = "dense"  # without remat, what the backward keeps per block layer: 'dense' (Dense outputs; LayerNorm and activation recomputed) or 'all' (docs/performance.md)
    compute_dtype: DType = "float32"  # matmul dtype of the residual blocks; input layer, heads, params, LayerNorm and losses stay float32
    matmul_precision: Precision = "default"  # precision of Dense matmuls (jax.lax.Precision)
    unroll_blocks: bool = False  # straight-line blocks instead of a scan (same function; compile grows with depth)

    seed: int = 0  # seeds params, envs and sampling
    num_seeds: int = 1  # train seeds seed .. seed+num_seeds-1 in one process, vmapped over a seed axis
    num_devices: int = 1  # devices of the ('data',) mesh (envs, buffer and batch sharded); 0: every device
    run_dir: str | None = None  # output folder; None: runs/<env>-c<depth>-a<depth>-s<seed>-<time>
    tensorboard: bool = True  # write tensorboard events to RUN_DIR/tb
    random_baseline: bool = True  # also evaluate a uniform random policy once, logged as eval/random_*
    progress: bool = True  # print progress lines
    checkpoint_every: int = 1  # save a full checkpoint every N epochs (and at the end); 0 disables
    keep_checkpoints: int = 3  # keep the newest K checkpoints (plus the best, see keep_best_checkpoint)
    keep_best_checkpoint: bool = True  # also keep the checkpoint with the best headline eval metric
    checkpoint_buffer_mb: float = 1024.0  # save the replay buffer when it is at most this big (MiB)
    nan_rollbacks: int = 0  # on NaN/Inf, roll back to the last checkpoint with a new RNG key, at most this often


# Fields that change array shapes or the meaning of saved state: a resumed run may not change them.
# reset_mode is one: 'fresh' and 'cached' keep different env-state trees.
SHAPE_FIELDS = ("algorithm", "learners", "env", "eval_env", "reset_mode", "num_seeds", "num_envs", "unroll_length", "max_replay_size",
                "critic_depth", "critic_width", "actor_depth", "actor_width", "repr_dim", "activation", "compute_dtype")


def shape_differences(saved: dict[str, Any], new: TrainConfig) -> list[str]:
    """'field: saved -> new' for each shape-changing field that differs (empty when resuming is safe)."""
    defaults, values = to_dict(TrainConfig()), to_dict(new)  # a field added after the run was saved has its default there
    changed = [f"{name}: {saved.get(name, defaults[name])!r} -> {values[name]!r}" for name in SHAPE_FIELDS
               if saved.get(name, defaults[name]) != values[name]]
    if bool(saved.get("offline")) != bool(new.offline):  # another path to the dataset is fine; online <-> offline is not
        changed.append(f"offline: {saved.get('offline')!r} -> {new.offline!r} (online and offline runs keep "
                       f"different states)")
    return changed


class ConfigError(ValueError):
    """A config that cannot run; the message names the field and the fix."""


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)]


def from_dict(values: dict[str, Any], source: str = "config") -> TrainConfig:
    """Build a TrainConfig from a mapping: unknown keys name the closest field, values take the field's type."""
    known = field_names()
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"{source}: unknown field '{key}'.{hint} Known fields: {', '.join(known)}")
    return TrainConfig(**{name: coerce_field(name, value, source) for name, value in values.items()})


class _WrongType(ValueError):
    """A value that a field's type cannot take (coerce_field turns it into a ConfigError naming the field)."""


def _to_int(value: Any) -> int:
    """An int, or a whole number written as a float or as text (YAML 1.1 reads `1e8` as the string '1e8')."""
    if isinstance(value, bool):
        raise _WrongType
    if isinstance(value, int):
        return value
    number = _to_float(value)
    if not number.is_integer():
        raise _WrongType
    return int(number)


def _to_float(value: Any) -> float:
    """A float from a number or from text such as '1e-4' (YAML 1.1 reads `1e-4` as a string)."""
    if isinstance(value, bool):
        raise _WrongType
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.replace("_", ""))
        except ValueError:
            raise _WrongType from None
    raise _WrongType


def _to_bool(value: Any) -> bool:
    """Only true/false: a number or a string such as 'no' is more likely a mistake than a switch."""
    if not isinstance(value, bool):
        raise _WrongType
    return value


def _to_str(value: Any) -> str:
    """Text only: a number where an env id or a path belongs is a mistake."""
    if not isinstance(value, str):
        raise _WrongType
    return value


COERCERS: dict[type, Callable[[Any], Any]] = {int: _to_int, float: _to_float, bool: _to_bool, str: _to_str}
TYPE_NAMES = {int: "an int", float: "a float", bool: "true or false", str: "a string"}


@functools.cache
def _field_types() -> dict[str, Any]:
    """Each TrainConfig field's declared type (annotations are strings under `from __future__ import annotations`)."""
    return typing.get_type_hints(TrainConfig)


def _choices(kind: Any) -> tuple[Any, ...] | None:
    """The allowed values of a Literal type, else None."""
    return typing.get_args(kind) if typing.get_origin(kind) is Literal else None


def _sequence_item(kind: Any) -> Any | None:
    """T for `tuple[T, ...]`, else None."""
    args = typing.get_args(kind)
    return args[0] if typing.get_origin(kind) is tuple and len(args) == 2 and args[1] is Ellipsis else None


def _optional_inner(kind: Any) -> Any | None:
    """T for `T | None`, else None."""
    args = typing.get_args(kind)
    if isinstance(kind, types.UnionType) and type(None) in args:
        return next(arg for arg in args if arg is not type(None))
    return None


def _convert(kind: Any, value: Any) -> Any:
    """`value` as an instance of `kind` (a plain type, a Literal or `T | None`); _WrongType when it cannot be."""
    inner = _optional_inner(kind)
    if inner is not None:
        return None if value is None else _convert(inner, value)
    item = _sequence_item(kind)
    if item is not None:  # a list in YAML; one bare item is a list of one
        return tuple(_convert(item, v) for v in (value if isinstance(value, (list, tuple)) else [value]))
    choices = _choices(kind)
    if choices is not None:
        if value not in choices:
            raise _WrongType
        return value
    return COERCERS[kind](value)


def expected_text(kind: Any) -> str:
    """What a field of type `kind` takes, in words: 'a float', 'a string or null', "one of 'norm', 'l2', ..."."""
    inner = _optional_inner(kind)
    if inner is not None:
        return f"{expected_text(inner)} or null"
    item = _sequence_item(kind)
    if item is not None:
        return f"a list, each item {expected_text(item)}"
    choices = _choices(kind)
    if choices is not None:
        return "one of " + ", ".join(repr(choice) for choice in choices)
    return TYPE_NAMES[kind]


EXAMPLE_VALUES = {"eval_env": "point_u_maze_eval", "run_dir": "runs/my_run", "offline": "data/point_u_maze.npz",
                  "learners": ["d16: critic_depth=16 actor_depth=16"]}  # fields whose default (None) shows little


def _example(name: str) -> str:
    """`name: value` as it would be written in a preset: the default, or a typical value where the default is None."""
    return yaml.safe_dump({name: EXAMPLE_VALUES.get(name, getattr(TrainConfig(), name))}).strip()


def coerce_field(name: str, value: Any, source: str = "config") -> Any:
    """`value` converted to field `name`'s declared type; ConfigError naming the field, value and type if it cannot."""
    kind = _field_types()[name]
    try:
        return _convert(kind, value)
    except _WrongType:
        raise ConfigError(f"{source}: {name} = {value!r} ({type(value).__name__}): expected {expected_text(kind)}, "
                          f"e.g. `{_example(name)}`") from None


BASE_KEY = "base"  # a preset may start from another: `base: ../paper.yaml` (path relative to the preset)
PRESETS_PACKAGE = "crl.configs"  # the repository's configs/, shipped in the package (pyproject package-dir)
PRESET_SUFFIX = ".yaml"
SWEEPS_FOLDER = "sweeps"  # sweep specs, not TrainConfig presets


def presets_dir() -> Path:
    """Where the shipped presets live: configs/ of the checkout (editable install) or of the installed package."""
    return Path(str(resources.files(PRESETS_PACKAGE)))


def preset_names(folder: str = "") -> list[str]:
    """The names resolve_preset takes in `folder` ('': TrainConfig presets, 'sweeps': sweep specs): 'paper/humanoid'."""
    root = presets_dir() / folder
    names = [path.relative_to(root).with_suffix("").as_posix() for path in root.rglob(f"*{PRESET_SUFFIX}")]
    return sorted((name for name in names if folder or not name.startswith(f"{SWEEPS_FOLDER}/")),
                  key=lambda name: (name.count("/"), name))


def resolve_preset(name: str | Path, folder: str = "", relative_to: Path | None = None,
                   what: str = "config file") -> Path:
    """An existing file (relative to `relative_to` when given) as is, else the shipped preset of that name.

    Names have no suffix: `quickstart`, `paper/ant_big_maze` (and `point_depth_cpu` with folder 'sweeps'), so
    `crl train --config quickstart` works from any directory.
    """
    path = Path(relative_to or "") / name
    if path.is_file():
        return path
    preset = presets_dir() / folder / f"{name}{PRESET_SUFFIX}"
    if Path(name).suffix != PRESET_SUFFIX and preset.is_file():
        return preset
    raise ConfigError(f"{what} {path} does not exist and is not a preset name.{_preset_hint(path, folder)} "
                      f"Give a path or a preset: {_preset_listing(folder)}")


def _preset_hint(path: Path, folder: str) -> str:
    """' Did you mean the preset `quickstart`?' when `path` ends like a preset file (configs/quickstart.yaml)."""
    matches = [name for name in preset_names(folder) if path.as_posix().endswith(f"{name}{PRESET_SUFFIX}")]
    return f" Did you mean the preset `{max(matches, key=len)}`?" if matches else ""


def _preset_listing(folder: str) -> str:
    """'arm_reach_cpu, paper, quickstart; paper/: ant_big_maze, ...': the preset names, grouped by folder."""
    groups: dict[str, list[str]] = {}
    for name in preset_names(folder):
        parent, _, stem = name.rpartition("/")
        groups.setdefault(parent, []).append(stem)
    return "; ".join(f"{parent}/: {', '.join(stems)}" if parent else ", ".join(stems)
                     for parent, stems in groups.items())


def _yaml_values(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The preset's fields, with its `base:` chain applied first (later files override earlier ones)."""
    if path.resolve() in seen:
        raise ConfigError(f"{path}: `{BASE_KEY}:` chain loops back to itself ({' -> '.join(map(str, seen))})")
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of field: value, got {type(values).__name__}")
    base = values.pop(BASE_KEY, None)
    if base is None:
        return values
    base_path = resolve_preset(str(base), relative_to=path.parent, what=f"{path}: `{BASE_KEY}:`")
    return {**_yaml_values(base_path, (*seen, path.resolve())), **values}


def load_yaml(path: str | Path) -> TrainConfig:
    """A TrainConfig from a preset file, or from a shipped preset's name (`quickstart`, `paper/ant_big_maze`)."""
    path = resolve_preset(path)
    return from_dict(_yaml_values(path), source=str(path))


def to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """The fields as plain YAML/JSON values (tuples as lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


@dataclasses.dataclass(frozen=True)
class StepPlan:
    """Exact env-step accounting of a run (the reference rounds; we log the real totals)."""

    env_steps_per_train_step: int
    prefill_collections: int
    prefill_env_steps: int
    train_steps_per_epoch: int
    env_steps_per_epoch: int
    total_env_steps: int  # what the run really does, prefill included
    relabelled_pool: int  # transitions available to SGD per training step


def plan_steps(cfg: TrainConfig, episode_length: int) -> StepPlan:
    per_train = cfg.num_envs * cfg.unroll_length
    prefill_collections = math.ceil(cfg.min_replay_size / cfg.unroll_length)
    prefill = prefill_collections * per_train
    per_epoch_steps = (cfg.total_env_steps - prefill) // (cfg.num_epochs * per_train)
    per_epoch = per_epoch_steps * per_train
    return StepPlan(
        env_steps_per_train_step=per_train,
        prefill_collections=prefill_collections,
        prefill_env_steps=prefill,
        train_steps_per_epoch=per_epoch_steps,
        env_steps_per_epoch=per_epoch,
        total_env_steps=prefill + per_epoch * cfg.num_epochs,
        relabelled_pool=cfg.num_envs * (episode_length - 1),
    )


def _check_positive(cfg: TrainConfig, names: list[str]) -> None:
    for name in names:
        value = getattr(cfg, name)
        if value <= 0:
            raise ConfigError(f"{name} = {value}: must be positive")


def _check_baseline_fields(cfg: TrainConfig) -> None:
    """Ranges of the baselines' fields and of the energies that split the representation."""
    if not 0.0 < cfg.tau <= 1.0:
        raise ConfigError(f"tau = {cfg.tau}: the Polyak rate must be in (0, 1] (1 copies the online networks)")
    if not 0.0 <= cfg.her_ratio <= 1.0:
        raise ConfigError(f"her_ratio = {cfg.her_ratio}: the relabelled fraction of goals must be in [0, 1]")
    if cfg.policy_delay < 1:
        raise ConfigError(f"policy_delay = {cfg.policy_delay}: must be >= 1 (1 updates the actor every SGD step)")
    for name in ("target_noise", "target_noise_clip", "exploration_noise"):
        if getattr(cfg, name) < 0:
            raise ConfigError(f"{name} = {getattr(cfg, name)}: a noise scale must be >= 0")
    if cfg.ogbench_eval_episodes < 1:
        raise ConfigError(f"ogbench_eval_episodes = {cfg.ogbench_eval_episodes}: must be at least 1")
    if cfg.bc_weight < 0:
        raise ConfigError(f"bc_weight = {cfg.bc_weight}: the behaviour-cloning weight must be >= 0 (0: no BC term)")
    if cfg.bc_weight > 0 and cfg.algorithm in BUILTIN_ALGORITHMS and cfg.algorithm != "crl":
        raise ConfigError(f"bc_weight = {cfg.bc_weight} applies to algorithm 'crl' (its actor loss); "
                          f"'{cfg.algorithm}' does not read it: set bc_weight 0, or algorithm gcbc for pure imitation")
    if cfg.energy == "mrn" and (cfg.repr_dim < 2 or cfg.repr_dim % 2):
        raise ConfigError(f"repr_dim = {cfg.repr_dim}: the 'mrn' energy splits the representation into a symmetric "
                          f"and an asymmetric half, so repr_dim must be even (e.g. 64)")


def validate(cfg: TrainConfig, known_envs: list[str] | None = None,
             episode_length: int | None = None) -> StepPlan | None:
    """Reject configs that cannot run, before anything is traced.

    Returns the step plan, or None when episode_length is not given (only field-level checks then run).
    """
    _check_positive(cfg, ["total_env_steps", "num_envs", "unroll_length", "max_replay_size", "min_replay_size",
                          "batch_size", "sgd_steps_per_train_step", "num_epochs", "num_eval_envs", "num_seeds",
                          "critic_width", "actor_width", "repr_dim", "actor_lr", "critic_lr", "alpha_lr"])
    for name in ("critic_depth", "actor_depth"):
        depth = getattr(cfg, name)
        if depth <= 0 or depth % BLOCK_LAYERS:
            lower = max(BLOCK_LAYERS, depth - depth % BLOCK_LAYERS)
            raise ConfigError(
                f"{name} = {depth}: depth counts the Dense layers inside residual blocks of {BLOCK_LAYERS}, "
                f"so it must be a positive multiple of {BLOCK_LAYERS} (e.g. {lower} or {lower + BLOCK_LAYERS})")
    if cfg.num_devices < 0:
        raise ConfigError(f"num_devices = {cfg.num_devices}: must be >= 1, or 0 for every device")
    if cfg.keep_checkpoints < 1 or cfg.checkpoint_every < 0:
        raise ConfigError(f"keep_checkpoints = {cfg.keep_checkpoints}, checkpoint_every = {cfg.checkpoint_every}: "
                          "keep at least 1 checkpoint; checkpoint_every must be >= 0 (0 disables checkpoints)")
    if not 0.0 < cfg.discount < 1.0:
        raise ConfigError(f"discount = {cfg.discount}: must be in (0, 1)")
    if cfg.logsumexp_penalty < 0:
        raise ConfigError(f"logsumexp_penalty = {cfg.logsumexp_penalty}: must be >= 0")
    _check_baseline_fields(cfg)
    if known_envs is not None:
        for name in ("env", "eval_env"):
            value = getattr(cfg, name)
            if value is not None and value not in known_envs:
                raise ConfigError(f"{name} = '{value}': unknown environment. {unknown_env_hint(value, known_envs)}")
    if cfg.min_replay_size > cfg.max_replay_size:
        raise ConfigError(f"min_replay_size = {cfg.min_replay_size} > max_replay_size = {cfg.max_replay_size}: "
                          "the buffer cannot hold what training waits for; raise max_replay_size or lower min_replay_size")
    if episode_length is None:
        return None
    if cfg.min_replay_size < episode_length and not cfg.offline:  # offline runs keep no replay buffer
        raise ConfigError(f"min_replay_size = {cfg.min_replay_size} < episode_length = {episode_length}: training "
                          f"samples windows of one episode length; set min_replay_size >= {episode_length}")
    plan = plan_steps(cfg, episode_length)
    if cfg.batch_size > plan.relabelled_pool:
        raise ConfigError(f"batch_size = {cfg.batch_size} is larger than the relabelled pool of {plan.relabelled_pool} "
                          f"transitions per training step (num_envs x (episode_length - 1)); lower batch_size or "
                          f"raise num_envs")
    max_sgd = plan.relabelled_pool // cfg.batch_size
    if cfg.sgd_steps_per_train_step > max_sgd:
        raise ConfigError(f"sgd_steps_per_train_step = {cfg.sgd_steps_per_train_step} needs more full batches than "
                          f"the {max_sgd} that {plan.relabelled_pool} relabelled transitions give at batch_size "
                          f"{cfg.batch_size}; set sgd_steps_per_train_step <= {max_sgd}")
    if plan.train_steps_per_epoch < 1:
        raise ConfigError(f"total_env_steps = {cfg.total_env_steps} leaves no training step: prefill takes "
                          f"{plan.prefill_env_steps} env steps and one training step per epoch needs "
                          f"{plan.env_steps_per_train_step} x num_epochs {cfg.num_epochs}; raise total_env_steps to at "
                          f"least {plan.prefill_env_steps + plan.env_steps_per_train_step * cfg.num_epochs} or lower "
                          f"num_epochs")
    return plan
