"""Deep residual MLPs (reference section 3) and the CRL actor / critic encoders built from a config.

Residual blocks are one block module stacked with `nn.scan`, so params have a leading
(n_blocks, ...) axis and trace/compile time does not grow with depth.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.ad_checkpoint import checkpoint_name

from crl.config import BLOCK_LAYERS, TrainConfig
from crl.envs.spec import EnvSpec

Params = Any

LOG_STD_MIN = -5.0  # actor log_std range (reference section 1)
LOG_STD_MAX = 2.0
TANH_LOG_DET_EPS = 1e-6  # inside log(1 - tanh(u)^2 + eps): keeps log pi finite at |a| -> 1
LAYER_NORM_EPS = 1e-6  # flax default, as in the reference code
KERNEL_INIT_SCALE = 1.0 / 3.0  # variance_scaling(1/3, 'fan_in', 'uniform')
INIT_BATCH = 1  # dummy batch size used only to build param shapes
ACTOR_HEADS = 2  # mean and pre-squash log_std
ACTION_EDGE_EPS = 1e-6  # data actions are clipped into (-1 + eps, 1 - eps) before atanh (tanh samples can hit +-1)
IO_DTYPE = jnp.float32  # input layer and output heads: float32 whatever the compute dtype (see ResidualMLP)

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {"swish": nn.swish, "relu": nn.relu}
DTYPES: dict[str, Any] = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
INPUT, BLOCKS, HEAD = "input", "blocks", "head_"  # a ResidualMLP's param names: input layer, scanned blocks, heads
DENSE_OUTPUT = "dense_output"  # checkpoint name of each Dense layer's output inside a residual block
# what a residual block's backward pass keeps from its forward (TrainConfig.block_residuals); None: every intermediate
BLOCK_RESIDUAL_POLICIES: dict[str, Callable | None] = {
    "all": None,
    "dense": jax.checkpoint_policies.save_only_these_names(DENSE_OUTPUT),
}
PRECISIONS: dict[str, jax.lax.Precision] = {
    "default": jax.lax.Precision.DEFAULT,
    "high": jax.lax.Precision.HIGH,
    "highest": jax.lax.Precision.HIGHEST,
}


def kernel_init() -> Callable[..., jax.Array]:
    """Kernel initialiser of every Dense layer (reference section 3)."""
    return nn.initializers.variance_scaling(KERNEL_INIT_SCALE, "fan_in", "uniform")


def num_blocks(depth: int) -> int:
    """Residual blocks for a depth (Dense layers inside blocks); rejects depths not a positive multiple of 4."""
    if depth <= 0 or depth % BLOCK_LAYERS:
        lower = max(BLOCK_LAYERS, depth - depth % BLOCK_LAYERS)
        raise ValueError(
            f"depth = {depth}: depth counts the Dense layers inside residual blocks of {BLOCK_LAYERS}, so it must "
            f"be a positive multiple of {BLOCK_LAYERS} (e.g. {lower} or {lower + BLOCK_LAYERS})")
    return depth // BLOCK_LAYERS


class DenseNormAct(nn.Module):
    """Dense (compute dtype) -> LayerNorm (float32 statistics) -> activation; output float32."""

    width: int
    activation: str
    compute_dtype: Any
    precision: jax.lax.Precision | None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.Dense(self.width, dtype=self.compute_dtype, param_dtype=jnp.float32, precision=self.precision,
                     kernel_init=kernel_init(), bias_init=nn.initializers.zeros, name="dense")(x)
        x = checkpoint_name(x, DENSE_OUTPUT)
        x = nn.LayerNorm(epsilon=LAYER_NORM_EPS, dtype=jnp.float32, param_dtype=jnp.float32,
                         use_fast_variance=False, name="norm")(x.astype(jnp.float32))
        return ACTIVATIONS[self.activation](x)


class ResidualBlock(nn.Module):
    """`h + [Dense -> LN -> act] x 4 (h)`, written as a scan body: (carry, None) -> (carry, None)."""

    width: int
    activation: str
    compute_dtype: Any
    precision: jax.lax.Precision | None

    @nn.compact
    def __call__(self, h: jax.Array, _: None) -> tuple[jax.Array, None]:
        x = h
        for i in range(BLOCK_LAYERS):
            x = DenseNormAct(self.width, self.activation, self.compute_dtype, self.precision, name=f"layer_{i}")(x)
        return h + x, None


class ResidualMLP(nn.Module):
    """Input layer, depth // 4 scanned residual blocks, then one Dense head per `out_dims` entry.

    With a bfloat16 compute dtype only the residual blocks run in bf16: the input layer and the heads
    stay float32, as bf16 keeps 8 significant bits and would round maze coordinates of 16-32 m to
    0.125 m (and the representations / action means that the losses compare) before any learning.
    """

    width: int
    depth: int
    out_dims: tuple[int, ...]
    activation: str = "swish"
    remat: bool = False
    compute_dtype: Any = jnp.float32
    precision: jax.lax.Precision | None = None
    unroll: bool = False
    residuals: str = "all"  # BLOCK_RESIDUAL_POLICIES key, when remat is off

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, ...]:
        n_blocks = num_blocks(self.depth)
        h = _input_layer(self, name=INPUT)(x)
        blocks = nn.scan(_block_module(self.remat, self.residuals), variable_axes={"params": 0},
                         split_rngs={"params": True}, length=n_blocks, unroll=self.scan_unroll)
        h, _ = blocks(*self.block_args, name=BLOCKS)(h, None)
        return tuple(_head(self, dim, name=f"{HEAD}{i}")(h) for i, dim in enumerate(self.out_dims))

    @property
    def block_args(self) -> tuple:
        return self.width, self.activation, self.compute_dtype, self.precision

    @property
    def scan_unroll(self) -> int:
        return num_blocks(self.depth) if self.unroll else 1


# A ResidualMLP's layers, built inside its compact __call__ (named, bound) or alone for joint_apply (unbound).
def _input_layer(mlp: ResidualMLP, name: str | None = None) -> DenseNormAct:
    return DenseNormAct(mlp.width, mlp.activation, IO_DTYPE, mlp.precision, name=name)


def _head(mlp: ResidualMLP, dim: int, name: str | None = None) -> nn.Dense:
    return nn.Dense(dim, dtype=IO_DTYPE, param_dtype=jnp.float32, precision=mlp.precision,
                    kernel_init=kernel_init(), bias_init=nn.initializers.zeros, name=name)


def block_architecture(mlp: ResidualMLP) -> tuple:
    """What a ResidualMLP's scanned blocks are: networks that agree on it can share one scan (joint_apply)."""
    return mlp.width, mlp.depth, mlp.activation, mlp.remat, mlp.compute_dtype, mlp.precision, mlp.unroll, mlp.residuals


def joint_apply(mlps: tuple[ResidualMLP, ...], params: tuple[Params, ...], inputs: tuple[jax.Array, ...]
                ) -> tuple[tuple[jax.Array, ...], ...]:
    """`mlp.apply` for several networks of one block architecture at once (each its own params, input and
    heads), their residual blocks in one scan: the same values, bit for bit, but each scan step holds
    independent work for the CPU's threads, where separate scans run one after the other (docs/performance.md)."""
    if len({block_architecture(mlp) for mlp in mlps}) != 1:
        raise ValueError(f"joint_apply needs networks of one block architecture, got "
                         f"{[block_architecture(mlp) for mlp in mlps]}")
    hs = tuple(_input_layer(mlp).apply({"params": p[INPUT]}, x) for mlp, p, x in zip(mlps, params, inputs))
    block = _block_module(mlps[0].remat, mlps[0].residuals)(*mlps[0].block_args)

    def step(hs, block_params):
        return tuple(block.apply({"params": p}, h, None)[0] for p, h in zip(block_params, hs)), None

    hs, _ = jax.lax.scan(step, hs, tuple(p[BLOCKS] for p in params), unroll=mlps[0].scan_unroll)
    return tuple(tuple(_head(mlp, dim).apply({"params": p[f"{HEAD}{i}"]}, h) for i, dim in enumerate(mlp.out_dims))
                 for mlp, p, h in zip(mlps, params, hs))


def _block_module(remat: bool, residuals: str) -> type[nn.Module]:
    """The residual block as the scan body: rematerialised whole (remat), keeping only the Dense outputs for the
    backward pass ('dense': LayerNorm and activation recomputed, a fraction of the stacked residuals a scan
    writes and reads), or plain ('all')."""
    if remat:
        return nn.remat(ResidualBlock, prevent_cse=False)
    policy = BLOCK_RESIDUAL_POLICIES[residuals]
    return ResidualBlock if policy is None else nn.remat(ResidualBlock, prevent_cse=False, policy=policy)


def mlp_from_config(cfg: TrainConfig, width: int, depth: int, out_dims: tuple[int, ...]) -> ResidualMLP:
    """A ResidualMLP with the config's activation, remat, dtype, precision and unroll settings."""
    num_blocks(depth)  # reject bad depths eagerly, before anything is traced
    return ResidualMLP(width=width, depth=depth, out_dims=out_dims, activation=cfg.activation, remat=cfg.remat,
                       compute_dtype=DTYPES[cfg.compute_dtype], precision=PRECISIONS[cfg.matmul_precision],
                       unroll=cfg.unroll_blocks, residuals=cfg.block_residuals)


def squash_log_std(x: jax.Array) -> jax.Array:
    """Map an unbounded head output into [LOG_STD_MIN, LOG_STD_MAX] (reference actor)."""
    return LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (jnp.tanh(x) + 1.0)


def tanh_gaussian_log_prob(pre_tanh: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
    """log pi(tanh(u)) summed over action dims: Normal(mean, std) log-density of u minus the tanh log-Jacobian."""
    z = (pre_tanh - mean) * jnp.exp(-log_std)
    normal = -0.5 * jnp.square(z) - log_std - 0.5 * math.log(2.0 * math.pi)
    jacobian = jnp.log(1.0 - jnp.square(jnp.tanh(pre_tanh)) + TANH_LOG_DET_EPS)
    return jnp.sum(normal - jacobian, axis=-1)


@dataclasses.dataclass(frozen=True)
class ActorNetworks:
    """A goal-conditioned tanh-Gaussian actor on obs = concat(state, goal), as a pure function of its params.

    Every algorithm's networks extend this (critics differ; the actor, evaluation and export are shared).
    """

    actor: ResidualMLP
    state_dim: int
    goal_dim: int
    action_size: int

    def actor_input(self) -> jax.Array:
        """A dummy (1, state_dim + goal_dim) batch that builds the actor's param shapes."""
        return jnp.zeros((INIT_BATCH, self.state_dim + self.goal_dim), jnp.float32)

    def actor_dist(self, actor_params: Params, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(mean, log_std) of the pre-tanh Gaussian for obs = concat(state, goal); log_std in [-5, 2]."""
        return actor_dist_from_heads(self.actor.apply({"params": actor_params}, obs))

    def sample_action(self, actor_params: Params, obs: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Reparameterised a = tanh(mu + sigma * eps) and its log-probability (B,)."""
        return sample_from(self.actor_dist(actor_params, obs), key)

    def deterministic_action(self, actor_params: Params, obs: jax.Array) -> jax.Array:
        """Evaluation action tanh(mu)."""
        mean, _ = self.actor_dist(actor_params, obs)
        return jnp.tanh(mean)

    def log_likelihood(self, actor_params: Params, obs: jax.Array, action: jax.Array) -> jax.Array:
        """(B,) log pi(a | obs) of given actions (behaviour cloning's term)."""
        return log_likelihood_under(self.actor_dist(actor_params, obs), action)


def actor_dist_from_heads(heads: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
    """(mean, log_std in [-5, 2]) from the actor network's two head outputs (mean, unbounded log_std)."""
    mean, raw_log_std = heads
    return mean, squash_log_std(raw_log_std)


def sample_from(dist: tuple[jax.Array, jax.Array], key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """a = tanh(mean + std * eps) of the actor's (mean, log_std), reparameterised, and its log-probability (B,)."""
    mean, log_std = dist
    pre_tanh = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)
    return jnp.tanh(pre_tanh), tanh_gaussian_log_prob(pre_tanh, mean, log_std)


def log_likelihood_under(dist: tuple[jax.Array, jax.Array], action: jax.Array) -> jax.Array:
    """(B,) log-probability of given actions under the actor's (mean, log_std)."""
    mean, log_std = dist
    pre_tanh = jnp.arctanh(jnp.clip(action, -1.0 + ACTION_EDGE_EPS, 1.0 - ACTION_EDGE_EPS))
    return tanh_gaussian_log_prob(pre_tanh, mean, log_std)


@dataclasses.dataclass(frozen=True)
class CRLNetworks(ActorNetworks):
    """Actor and the two critic encoders as pure functions of explicit params (closed over, never traced)."""

    sa_encoder: ResidualMLP = None
    g_encoder: ResidualMLP = None
    energy: str = "norm"  # f(phi, psi) that q_value reports (crl.losses.ENERGIES)

    def init(self, key: jax.Array) -> Params:
        """Fresh params {'actor': ..., 'critic': {'sa_encoder': ..., 'g_encoder': ...}} (float32)."""
        k_actor, k_sa, k_g = jax.random.split(key, 3)
        sa = jnp.zeros((INIT_BATCH, self.state_dim + self.action_size), jnp.float32)
        goal = jnp.zeros((INIT_BATCH, self.goal_dim), jnp.float32)
        return {
            "actor": self.actor.init(k_actor, self.actor_input())["params"],
            "critic": {"sa_encoder": self.sa_encoder.init(k_sa, sa)["params"],
                       "g_encoder": self.g_encoder.init(k_g, goal)["params"]},
        }

    def sa_encode(self, critic_params: Params, state: jax.Array, action: jax.Array) -> jax.Array:
        """phi(s, a): (B, repr_dim) float32 from concat(state, action)."""
        (phi,) = self.sa_encoder.apply({"params": critic_params["sa_encoder"]},
                                       jnp.concatenate([state, action], axis=-1))
        return phi

    def g_encode(self, critic_params: Params, goal: jax.Array) -> jax.Array:
        """psi(g): (B, repr_dim) float32 from the goal coordinates."""
        (psi,) = self.g_encoder.apply({"params": critic_params["g_encoder"]}, goal)
        return psi

    def encode(self, critic_params: Params, state: jax.Array, action: jax.Array, goal: jax.Array
               ) -> tuple[jax.Array, jax.Array]:
        """(phi(s, a), psi(g)) as sa_encode and g_encode give them, both encoders' blocks in one scan when they
        share a block architecture (always, from make_networks)."""
        phi, psi, _ = self.encode_and_act(critic_params, state, action, goal)
        return phi, psi

    def encode_and_act(self, critic_params: Params, state: jax.Array, action: jax.Array, goal: jax.Array,
                       actor_params: Params | None = None) -> tuple[jax.Array, jax.Array, tuple | None]:
        """(phi(s, a), psi(g), the actor's (mean, log_std) on concat(s, g) or None without actor_params): every
        network that shares the state-action encoder's block architecture runs in one scan, the rest alone."""
        calls = {"sa": (self.sa_encoder, critic_params["sa_encoder"], jnp.concatenate([state, action], axis=-1)),
                 "g": (self.g_encoder, critic_params["g_encoder"], goal)}
        if actor_params is not None:
            calls["actor"] = (self.actor, actor_params, jnp.concatenate([state, goal], axis=-1))
        joint = [name for name, (mlp, _, _) in calls.items()
                 if block_architecture(mlp) == block_architecture(self.sa_encoder)]
        outputs = dict(zip(joint, joint_apply(*zip(*(calls[name] for name in joint)))))
        outputs.update({name: mlp.apply({"params": p}, x) for name, (mlp, p, x) in calls.items() if name not in joint})
        dist = None if actor_params is None else actor_dist_from_heads(outputs["actor"])
        return outputs["sa"][0], outputs["g"][0], dist

    def q_value(self, critic_params: Params, state: jax.Array, action: jax.Array, goal: jax.Array) -> jax.Array:
        """(B,) critic values f(phi(s, a), psi(g)) with the config's energy (what `crl viz q` draws)."""
        from crl.losses import paired_energy  # losses imports this module

        return paired_energy(self.sa_encode(critic_params, state, action), self.g_encode(critic_params, goal),
                             self.energy)


def make_networks(spec: EnvSpec, cfg: TrainConfig) -> CRLNetworks:
    """Actor (critic_* / actor_* depth and width taken separately) and encoders for an environment."""
    return CRLNetworks(
        actor=mlp_from_config(cfg, cfg.actor_width, cfg.actor_depth, (spec.action_size,) * ACTOR_HEADS),
        sa_encoder=mlp_from_config(cfg, cfg.critic_width, cfg.critic_depth, (cfg.repr_dim,)),
        g_encoder=mlp_from_config(cfg, cfg.critic_width, cfg.critic_depth, (cfg.repr_dim,)),
        state_dim=spec.state_dim, goal_dim=spec.goal_dim, action_size=spec.action_size, energy=cfg.energy)


def param_count(tree: Params) -> int:
    """Total number of scalars in a pytree of arrays (or ShapeDtypeStructs)."""
    return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(tree))
