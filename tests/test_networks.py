"""ResidualMLP and CRL networks: exact param counts, an independent numpy forward pass, scan/unroll/remat
equivalence, mixed precision, depth validation and a 1024-layer forward + backward on CPU."""
import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from crl.config import TrainConfig
from crl.networks import (LAYER_NORM_EPS, LOG_STD_MAX, LOG_STD_MIN, ResidualMLP, joint_apply, make_networks,
                          num_blocks, param_count)
from crl.envs.spec import EnvSpec

WIDTH = 256
REPR = 64
BLOCK = 4
ANT = EnvSpec(name="ant", backend="spring", state_dim=29, goal_indices=(0, 1), action_size=8,
              episode_length=1000, dt=0.05, success_radius=0.5)
HUMANOID = EnvSpec(name="humanoid", backend="spring", state_dim=268, goal_indices=(0, 1, 2), action_size=17,
                   episode_length=1000, dt=0.03, success_radius=0.5)
TINY_SPEC = EnvSpec(name="tiny", backend="jax", state_dim=5, goal_indices=(0, 1), action_size=3,
                    episode_length=10, dt=0.1, success_radius=0.5)
SMALL = dict(width=16, depth=8)  # two residual blocks: enough to tell blocks apart, cheap to compile


# ---------------------------------------------------------------- parameter counts (reference section 3)

def dense(n_in, n_out):
    return n_in * n_out + n_out


def mlp_params(n_in, width, depth, heads):
    """Input Dense+LN, depth x (Dense+LN) inside blocks, one Dense per head."""
    layer_norm = 2 * width
    return dense(n_in, width) + layer_norm + depth * (dense(width, width) + layer_norm) + sum(
        dense(width, h) for h in heads)


def expected_counts(spec, depth):
    critic = (mlp_params(spec.state_dim + spec.action_size, WIDTH, depth, (REPR,))
              + mlp_params(spec.goal_dim, WIDTH, depth, (REPR,)))
    actor = mlp_params(spec.obs_dim, WIDTH, depth, (spec.action_size, spec.action_size))
    return critic, actor


def counted(spec, depth):
    cfg = TrainConfig(critic_depth=depth, actor_depth=depth, critic_width=WIDTH, actor_width=WIDTH, repr_dim=REPR)
    shapes = jax.eval_shape(make_networks(spec, cfg).init, jax.random.key(0))
    return param_count(shapes["critic"]), param_count(shapes["actor"])


def test_ant_d4_counts_exact():
    assert counted(ANT, 4) == expected_counts(ANT, 4) == (574_848, 278_032)


@pytest.mark.parametrize("spec, depth, paper_millions, digits", [
    (ANT, 4, (0.57, 0.28), 2),
    (ANT, 64, (8.53, 4.26), 2),
    (HUMANOID, 4, (0.64, 0.34), 2),
    (HUMANOID, 64, (8.6, 4.3), 1),
    (HUMANOID, 1024, (135.9, 68.0), 1),
])
def test_counts_match_formula_and_paper(spec, depth, paper_millions, digits):
    critic, actor = counted(spec, depth)
    assert (critic, actor) == expected_counts(spec, depth)
    assert (round(critic / 1e6, digits), round(actor / 1e6, digits)) == paper_millions


# ---------------------------------------------------------------- independent numpy forward pass

def np_layer(x, p, act):
    y = x @ np.asarray(p["dense"]["kernel"], np.float64) + np.asarray(p["dense"]["bias"], np.float64)
    mu = y.mean(-1, keepdims=True)
    var = ((y - mu) ** 2).mean(-1, keepdims=True)
    y = (y - mu) / np.sqrt(var + LAYER_NORM_EPS) * np.asarray(p["norm"]["scale"]) + np.asarray(p["norm"]["bias"])
    return act(y)


def np_swish(x):
    return x / (1.0 + np.exp(-x))


def np_relu(x):
    return np.maximum(x, 0.0)


def np_forward(params, x, n_heads, act=np_swish):
    """Reference section 3 written directly over the param tree, in float64."""
    h = np_layer(np.asarray(x, np.float64), params["input"], act)
    blocks = params["blocks"]
    n_blocks = blocks["layer_0"]["dense"]["kernel"].shape[0]
    for b in range(n_blocks):
        x = h
        for i in range(BLOCK):
            layer = jax.tree.map(lambda a: np.asarray(a)[b], blocks[f"layer_{i}"])
            x = np_layer(x, layer, act)
        h = h + x
    return [h @ np.asarray(params[f"head_{i}"]["kernel"], np.float64) + np.asarray(params[f"head_{i}"]["bias"])
            for i in range(n_heads)]


@pytest.fixture(scope="module")
def small_mlp():
    model = ResidualMLP(out_dims=(3, 2), **SMALL)
    x = jax.random.normal(jax.random.key(1), (4, 7))
    params = jax.jit(model.init)(jax.random.key(0), x)["params"]
    return model, params, x


def test_forward_matches_numpy(small_mlp):
    model, params, x = small_mlp
    outs = jax.jit(model.apply)({"params": params}, x)
    assert [o.dtype for o in outs] == [jnp.float32, jnp.float32]
    for got, want in zip(outs, np_forward(params, x, 2)):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-5)


def test_relu_matches_numpy():
    model = ResidualMLP(out_dims=(3,), activation="relu", **SMALL)
    x = jax.random.normal(jax.random.key(1), (4, 7))
    params = jax.jit(model.init)(jax.random.key(0), x)["params"]
    (got,) = jax.jit(model.apply)({"params": params}, x)
    np.testing.assert_allclose(np.asarray(got), np_forward(params, x, 1, np_relu)[0], rtol=1e-4, atol=1e-5)


def test_param_tree_stacked_and_blocks_independent(small_mlp):
    _, params, _ = small_mlp
    kernels = params["blocks"]["layer_0"]["dense"]["kernel"]
    assert kernels.shape == (num_blocks(SMALL["depth"]), SMALL["width"], SMALL["width"])
    assert not np.allclose(kernels[0], kernels[1])
    assert np.all(params["blocks"]["layer_0"]["dense"]["bias"] == 0)
    assert np.all(params["blocks"]["layer_0"]["norm"]["scale"] == 1)
    bound = math.sqrt(3 * (1 / 3) / SMALL["width"])  # variance_scaling(1/3, fan_in, uniform)
    assert np.abs(kernels).max() <= bound
    assert np.abs(kernels).max() > 0.9 * bound


def test_unroll_same_tree_and_function(small_mlp):
    model, params, x = small_mlp
    unrolled = ResidualMLP(out_dims=(3, 2), unroll=True, **SMALL)
    unrolled_init = jax.eval_shape(unrolled.init, jax.random.key(0), x)["params"]
    assert jax.tree.structure(unrolled_init) == jax.tree.structure(params)
    for a, b in zip(jax.jit(model.apply)({"params": params}, x), jax.jit(unrolled.apply)({"params": params}, x)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    text = jax.jit(unrolled.apply).lower({"params": params}, x).as_text()
    assert "stablehlo.while" not in text  # straight-line blocks
    assert "stablehlo.while" in jax.jit(model.apply).lower({"params": params}, x).as_text()


@pytest.mark.parametrize("variant", [{"remat": True}, {"residuals": "dense"}, {"residuals": "dense", "unroll": True}])
def test_remat_same_outputs_and_gradients(small_mlp, variant):
    """Full remat and the 'dense' residual policy (LayerNorm and activation recomputed in the backward pass)
    compute the same function and gradients as keeping every intermediate."""
    model, params, x = small_mlp
    other = ResidualMLP(out_dims=(3, 2), **{**SMALL, **variant})

    def loss(m, p):
        a, b = m.apply({"params": p}, x)
        return jnp.sum(jnp.sin(a)) + jnp.sum(b ** 2)

    v0, g0 = jax.jit(jax.value_and_grad(lambda p: loss(model, p)))(params)
    v1, g1 = jax.jit(jax.value_and_grad(lambda p: loss(other, p)))(params)
    np.testing.assert_allclose(v0, v1, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), g0, g1)


def test_dense_residual_policy_keeps_less():
    """The scanned backward keeps only the Dense outputs under 'dense': less temporary memory than 'all'."""
    x = jnp.ones((64, 7))

    def temp_bytes(residuals):
        model = ResidualMLP(out_dims=(3,), width=32, depth=16, residuals=residuals)
        params = jax.eval_shape(model.init, jax.random.key(0), x)["params"]
        grad = jax.jit(jax.grad(lambda p: jnp.sum(model.apply({"params": p}, x)[0])))
        return grad.lower(params).compile().memory_analysis().temp_size_in_bytes

    assert temp_bytes("dense") < 0.7 * temp_bytes("all")


def test_bf16_compute_close_to_fp32(small_mlp):
    model, params, x = small_mlp
    bf16 = ResidualMLP(out_dims=(3, 2), compute_dtype=jnp.bfloat16, **SMALL)
    assert jax.tree.all(jax.tree.map(lambda a: a.dtype == jnp.float32,
                                     jax.eval_shape(bf16.init, jax.random.key(0), x)["params"]))
    for a, b in zip(jax.jit(model.apply)({"params": params}, x), jax.jit(bf16.apply)({"params": params}, x)):
        assert b.dtype == jnp.float32
        scale = float(jnp.abs(a).max())
        np.testing.assert_allclose(b, a, atol=0.05 * scale)
        assert not np.array_equal(a, b)  # bf16 really was used


MAZE_COORDS = (16.0, 32.0)  # metres: the far cells of the ant / humanoid mazes, where bf16's spacing is 0.125
BELOW_BF16_SPACING = 0.05  # a goal shift bf16 cannot represent at these coordinates
BF16_MAZE_RTOL = 0.03  # bf16 blocks vs float32, relative to the largest float32 output (measured ~0.01)


def test_bf16_keeps_maze_scale_inputs_and_heads_float32():
    """bf16 runs the blocks only: maze coordinates reach the input layer unrounded, outputs stay close."""
    x = jax.random.uniform(jax.random.key(1), (256, 2), minval=MAZE_COORDS[0], maxval=MAZE_COORDS[1])
    shifted = x + BELOW_BF16_SPACING
    assert (x.astype(jnp.bfloat16) == shifted.astype(jnp.bfloat16)).all(axis=1).any()  # bf16 loses some shifts
    f32 = ResidualMLP(out_dims=(16,), **SMALL)
    bf16 = ResidualMLP(out_dims=(16,), compute_dtype=jnp.bfloat16, **SMALL)
    params = jax.jit(f32.init)(jax.random.key(0), x)["params"]

    def traced(model):
        """(outputs, input-layer activations) of one jitted forward pass."""
        @jax.jit
        def run(inputs):
            outs, state = model.apply({"params": params}, inputs, capture_intermediates=True)
            return outs, state["intermediates"]["input"]["__call__"][0]
        return run

    run32, run16 = traced(f32), traced(bf16)
    ((out32,), first32), ((out16,), first16) = run32(x), run16(x)
    np.testing.assert_array_equal(first16, first32)  # the input layer is float32
    moved = np.abs(np.asarray(run16(shifted)[1]) - np.asarray(first16)).max(axis=1)
    assert (moved > 0).all()  # every 5 cm shift is seen (a bf16 input layer rounds ~40% of them away)
    assert out16.dtype == jnp.float32
    np.testing.assert_allclose(out16, out32, atol=BF16_MAZE_RTOL * float(jnp.abs(out32).max()))
    assert not np.array_equal(out16, out32)  # the blocks really ran in bf16


@pytest.mark.parametrize("depth", [6, 0, -4, 2])
def test_bad_depth_rejected(depth):
    with pytest.raises(ValueError, match="multiple of 4"):
        ResidualMLP(width=8, depth=depth, out_dims=(2,)).init(jax.random.key(0), jnp.ones((1, 3)))
    with pytest.raises(ValueError, match=f"depth = {depth}"):
        make_networks(TINY_SPEC, TrainConfig(critic_depth=depth))


# ---------------------------------------------------------------- CRL networks built from a config

TINY_CFG = TrainConfig(critic_depth=4, critic_width=16, actor_depth=8, actor_width=8, repr_dim=6)


@pytest.fixture(scope="module")
def tiny_nets():
    nets = make_networks(TINY_SPEC, TINY_CFG)
    return nets, jax.jit(nets.init)(jax.random.key(0))


def test_make_networks_shapes_and_config(tiny_nets):
    nets, params = tiny_nets
    assert set(params) == {"actor", "critic"} and set(params["critic"]) == {"sa_encoder", "g_encoder"}
    assert params["actor"]["blocks"]["layer_0"]["dense"]["kernel"].shape == (2, 8, 8)
    assert params["critic"]["sa_encoder"]["blocks"]["layer_0"]["dense"]["kernel"].shape == (1, 16, 16)
    assert params["critic"]["sa_encoder"]["input"]["dense"]["kernel"].shape == (5 + 3, 16)
    assert params["critic"]["g_encoder"]["input"]["dense"]["kernel"].shape == (2, 16)
    assert params["actor"]["input"]["dense"]["kernel"].shape == (5 + 2, 8)
    b = 3
    state, goal, action = jnp.ones((b, 5)), jnp.ones((b, 2)), jnp.zeros((b, 3))
    assert jax.eval_shape(nets.sa_encode, params["critic"], state, action).shape == (b, 6)
    assert jax.eval_shape(nets.g_encode, params["critic"], goal).shape == (b, 6)
    cfg = TrainConfig(compute_dtype="bfloat16", matmul_precision="highest", unroll_blocks=True, remat=True,
                      activation="relu")
    actor = make_networks(TINY_SPEC, cfg).actor
    assert (actor.compute_dtype, actor.precision, actor.unroll, actor.remat, actor.activation) == (
        jnp.bfloat16, jax.lax.Precision.HIGHEST, True, True, "relu")


def test_encoders_match_numpy(tiny_nets):
    nets, params = tiny_nets
    state, action, goal = (jax.random.normal(jax.random.key(i), (4, n)) for i, n in enumerate((5, 3, 2)))
    phi = jax.jit(nets.sa_encode)(params["critic"], state, action)
    want = np_forward(params["critic"]["sa_encoder"], np.concatenate([state, action], -1), 1)[0]
    np.testing.assert_allclose(phi, want, rtol=1e-4, atol=1e-5)
    psi = jax.jit(nets.g_encode)(params["critic"], goal)
    np.testing.assert_allclose(psi, np_forward(params["critic"]["g_encoder"], goal, 1)[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("variant", [{}, {"unroll_blocks": True}, {"remat": True}, {"block_residuals": "all"},
                                     {"compute_dtype": "bfloat16"}])
def test_joint_scans_equal_separate_networks_bit_for_bit(variant):
    """CRLNetworks.encode_and_act runs the critic encoders' and the actor's blocks in one scan (joint_apply): phi,
    psi, the actor's (mean, log_std) and the gradients of a loss of all three equal sa_encode / g_encode /
    actor_dist's exactly, for every scan setting; an actor of another depth gets a scan of its own (same values)."""
    cfg = TrainConfig(critic_depth=8, critic_width=16, actor_depth=8, actor_width=16, repr_dim=6, **variant)
    nets = make_networks(TINY_SPEC, cfg)
    params = nets.init(jax.random.key(0))
    state, action, goal = (jax.random.normal(jax.random.key(i), (12, n)) for i, n in enumerate((5, 3, 2)))

    def joint(nets):
        return lambda p: nets.encode_and_act(p["critic"], state, action, goal, p["actor"])

    def separate(nets):
        return lambda p: (nets.sa_encode(p["critic"], state, action), nets.g_encode(p["critic"], goal),
                          nets.actor_dist(p["actor"], jnp.concatenate([state, goal], -1)))

    def loss(encode):
        def total(p):
            phi, psi, (mean, log_std) = encode(p)
            return jnp.sum(jnp.square(phi @ psi.T)) + jnp.sum(mean * log_std)
        return total

    for nets, scans in [(nets, 1), (dataclasses.replace(nets, actor=nets.actor.clone(depth=4)), 2)]:
        params = nets.init(jax.random.key(0))
        assert str(jax.make_jaxpr(joint(nets))(params)).count("scan[") == scans
        jax.tree.map(np.testing.assert_array_equal, jax.jit(joint(nets))(params), jax.jit(separate(nets))(params))
        jax.tree.map(np.testing.assert_array_equal, jax.jit(jax.grad(loss(joint(nets))))(params),
                     jax.jit(jax.grad(loss(separate(nets))))(params))
    jax.tree.map(np.testing.assert_array_equal, nets.encode(params["critic"], state, action, goal),
                 (nets.sa_encode(params["critic"], state, action), nets.g_encode(params["critic"], goal)))
    with pytest.raises(ValueError, match="one block architecture"):
        joint_apply((nets.sa_encoder, nets.actor), (params["critic"]["sa_encoder"], params["actor"]),
                    (jnp.zeros((2, 8)), jnp.zeros((2, 7))))


def test_actor_log_std_bounds_and_deterministic_action(tiny_nets):
    nets, params = tiny_nets
    obs = jax.random.normal(jax.random.key(3), (64, 7)) * jnp.logspace(-2, 4, 64)[:, None]
    mean, log_std = jax.jit(nets.actor_dist)(params["actor"], obs)
    assert jnp.all(log_std >= LOG_STD_MIN) and jnp.all(log_std <= LOG_STD_MAX)
    raw = np_forward(params["actor"], obs, 2)
    np.testing.assert_allclose(mean, raw[0], rtol=1e-4, atol=1e-4)
    want_log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (np.tanh(raw[1]) + 1)
    np.testing.assert_allclose(log_std, want_log_std, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(jax.jit(nets.deterministic_action)(params["actor"], obs), np.tanh(raw[0]), atol=1e-4)


def test_sample_action_statistics(tiny_nets):
    """Pre-tanh samples of one observation have the actor's mean and std."""
    nets, params = tiny_nets
    n = 4096
    obs = jnp.broadcast_to(jax.random.normal(jax.random.key(4), (1, 7)), (n, 7))
    action, log_prob = jax.jit(nets.sample_action)(params["actor"], obs, jax.random.key(5))
    assert action.shape == (n, 3) and log_prob.shape == (n,)
    assert jnp.all(jnp.abs(action) < 1)
    mean, log_std = jax.jit(nets.actor_dist)(params["actor"], obs[:1])
    pre = np.arctanh(np.asarray(action, np.float64))
    std = np.exp(np.asarray(log_std[0]))
    assert np.all(np.abs(pre.mean(0) - np.asarray(mean[0])) < 5 * std / math.sqrt(n))  # 5 standard errors
    np.testing.assert_allclose(pre.std(0), std, rtol=0.1)


def test_depth_1024_forward_and_backward():
    model = ResidualMLP(width=WIDTH, depth=1024, out_dims=(REPR,), remat=True)
    x = jax.random.normal(jax.random.key(0), (4, 37))
    params = jax.jit(model.init)(jax.random.key(1), x)["params"]
    assert param_count(params) == mlp_params(37, WIDTH, 1024, (REPR,))

    @jax.jit
    def loss_and_grad(p):
        return jax.value_and_grad(lambda q: jnp.mean(model.apply({"params": q}, x)[0] ** 2))(p)

    loss, grads = loss_and_grad(params)
    assert np.isfinite(loss)
    assert jax.tree.all(jax.tree.map(lambda g: bool(jnp.all(jnp.isfinite(g))), grads))
    first_block = grads["blocks"]["layer_0"]["dense"]["kernel"][0]
    assert float(jnp.abs(first_block).sum()) > 0  # gradient reaches the bottom of the stack
