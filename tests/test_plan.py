"""`crl plan` and crl train's memory check: byte counts, FLOPs, fixes, refusal before allocation, JSON output."""
from __future__ import annotations

import dataclasses
import json

import jax
import pytest
from jax._src.core import trace_state_clean
from tiny_run import tiny_config, write_tiny_yaml

from crl import cli, envs
from crl.config import ConfigError, TrainConfig
from crl.networks import make_networks, param_count
from crl.plan import advice, planner, preflight
from crl.plan.devices import GIB, load_devices

# Wide enough that matmuls dominate the FLOPs; two residual blocks per network, so the FLOP count is extrapolated.
PLAN_RUN = dict(critic_width=128, actor_width=128, critic_depth=8, actor_depth=8)
FLOAT32_BYTES = INT32_BYTES = 4
ADAM_SCALARS = 3  # Adam's step count in each of the actor, critic and alpha optimiser states
ALPHA_MOMENTS = 2  # alpha's Adam mu and nu (scalars)
BUFFER_COUNTERS = 2  # insert_pos and size
# XLA counts LayerNorm, activations, the B x B energies and Adam as well as the matmuls: at width 128 and batch 64
# these add a few percent, so its count must lie in [1, 1.2] x the matmuls' count.
FLOPS_TOLERANCE = 1.2


def _guard_init(make_programs):
    """make_programs whose init may be traced (eval_shape) but never run: running it would allocate the state."""

    def guarded(trainer):
        programs = make_programs(trainer)
        init = programs.init

        def init_traced_only(*args):
            if trace_state_clean():
                raise AssertionError("the training state was allocated")
            return init(*args)

        return dataclasses.replace(programs, init=init_traced_only)

    return guarded


@pytest.fixture(scope="module")
def plan():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(planner, "make_programs", _guard_init(planner.make_programs))
        return planner.make_plan(tiny_config(**PLAN_RUN))


def test_bytes_match_shapes(plan):
    cfg = plan.cfg
    spec = envs.spec(cfg.env)
    params = param_count(jax.eval_shape(make_networks(spec, cfg).init, jax.random.PRNGKey(0)))
    assert plan.state.params == FLOAT32_BYTES * params
    assert plan.state.optimiser == (2 * FLOAT32_BYTES * params + ADAM_SCALARS * INT32_BYTES
                                    + ALPHA_MOMENTS * FLOAT32_BYTES)
    rows = cfg.max_replay_size * cfg.num_envs
    assert plan.state.buffer == (rows * (spec.obs_dim + spec.action_size) * FLOAT32_BYTES + rows * INT32_BYTES
                                 + BUFFER_COUNTERS * INT32_BYTES)
    epoch = plan.programs["epoch"]
    assert epoch.argument == plan.state.total and epoch.alias == plan.state.total  # the state, donated
    assert plan.peak_bytes >= epoch.peak >= plan.state.total


def _matmul_flops(cfg, spec, batch: int) -> float:
    """Multiply-adds x 2 of the Dense layers in one SGD update (forward, input gradients, weight gradients)."""

    def forward(inputs, width, depth, outputs):
        return 2 * batch * (inputs * width + depth * width * width + width * sum(outputs))

    s, a, g, r = spec.state_dim, spec.action_size, spec.goal_dim, cfg.repr_dim
    actor = forward(s + g, cfg.actor_width, cfg.actor_depth, (a, a))
    sa = forward(s + a, cfg.critic_width, cfg.critic_depth, (r,))
    goal = forward(g, cfg.critic_width, cfg.critic_depth, (r,))
    # actor loss: forward of all three nets; input gradients back through phi (to the action) and the actor
    # (but not into its input), weight gradients of the actor
    actor_loss = actor + sa + goal + sa + 2 * actor - 2 * batch * (s + g) * cfg.actor_width
    # critic loss: forward, weight gradients, input gradients except into the two input layers
    critic_loss = 3 * (sa + goal) - 2 * batch * ((s + a) + g) * cfg.critic_width
    return actor_loss + critic_loss


def test_flops_per_update_match_the_matmuls(plan):
    cfg = plan.cfg
    analytic = _matmul_flops(cfg, envs.spec(cfg.env), cfg.batch_size)
    assert 1.0 <= plan.flops_per_update / analytic <= FLOPS_TOLERANCE
    assert plan.flops_per_epoch == plan.flops_per_update * plan.steps.train_steps_per_epoch * cfg.sgd_steps_per_train_step
    assert plan.sgd_steps == plan.sgd_steps_per_epoch * cfg.num_epochs


def test_train_refuses_a_run_that_cannot_fit_before_allocating(plan, monkeypatch, tmp_path):
    import crl.train

    capacity = plan.peak_bytes - plan.state.buffer * 2 // 5  # fits only with a smaller replay buffer
    monkeypatch.setattr(preflight, "local_capacity", lambda: preflight.Capacity("gpu", capacity))
    monkeypatch.setattr(crl.train, "make_programs", _guard_init(crl.train.make_programs))
    with pytest.raises(ConfigError, match=r"does not fit this gpu.*set max_replay_size=\d+") as err:
        crl.train.train(dataclasses.replace(plan.cfg, run_dir=str(tmp_path)))
    rows = int(str(err.value).split("max_replay_size=")[1].split()[0])
    assert plan.cfg.min_replay_size <= rows < plan.cfg.max_replay_size


def test_fixes_in_order_with_their_peaks(plan):
    peaks = {"remat": plan.peak_bytes // 2, "compute_dtype": plan.peak_bytes // 2, "num_envs": plan.peak_bytes // 2}
    asked = []

    def replan(cfg):
        changed = [k for k in peaks if getattr(cfg, k) != getattr(plan.cfg, k)]
        asked.append(changed)
        return plan.peak_bytes - sum(plan.peak_bytes - peaks[k] for k in changed)

    capacity = plan.peak_bytes * 3 // 4  # too small for the buffer alone; remat or bf16 halve the peak here
    found = advice.Fixer(plan, replan).fixes(capacity, advice.LOCAL_MARGIN, first_only=True)
    assert [f.setting for f in found] == ["remat=True"] and asked == [["remat"]]
    every = advice.Fixer(plan, replan).fixes(capacity, advice.LOCAL_MARGIN)
    assert [f.setting.split("=")[0] for f in every] == ["remat", "compute_dtype", "remat", "num_envs"]
    assert all(f.peak_bytes <= capacity for f in every)


def test_plan_json_and_devices_file(plan, monkeypatch, capsys, tmp_path):
    devices = tmp_path / "devices.yaml"
    small = plan.peak_bytes / GIB / 2  # a device too small for this run
    devices.write_text(f"tiny-gpu: {{memory_gib: {small}, fp32_tflops: 1, tf32_tflops: 2, bf16_tflops: 4}}\n")
    assert load_devices(devices)["tiny-gpu"].bf16_flops == 4e12
    monkeypatch.setattr(planner, "make_plan", lambda cfg: plan)
    monkeypatch.setattr(planner, "replan_peak", lambda cfg: plan.peak_bytes // 4)
    config = write_tiny_yaml(tmp_path / "tiny.yaml", **PLAN_RUN)
    assert cli.main(["plan", "--config", str(config), "--json", "--devices-file", str(devices),
                     "--device", "tiny-gpu", "--device", "A100-40GB"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["peak_bytes"] == plan.peak_bytes and out["state_bytes"]["buffer"] == plan.state.buffer
    assert set(out["programs"]) == {"prefill", "epoch", "evaluate"}
    assert out["steps"]["sgd_steps"] == plan.sgd_steps and out["flops"]["per_sgd_update"] == plan.flops_per_update
    tiny, a100 = out["devices"]
    assert a100["fits"] and a100["bound_s"] == pytest.approx(plan.total_flops / 156e12)
    assert not tiny["fits"] and tiny["fixes"] and tiny["bound_s"] == pytest.approx(plan.total_flops / 2e12)
    assert cli.main(["plan", "--config", str(config), "--device", "no-such-gpu"]) == 2


def test_block_costs_extrapolate_to_an_unrolled_compile():
    """FLOPs are affine in the blocks of each network: the 1- and 2-block probes predict a 3-block compile."""
    import dataclasses

    from crl.plan.flops import _compiled_flops, block_costs

    cfg = TrainConfig(env="point_u_maze", critic_width=32, actor_width=32, repr_dim=16, batch_size=32)
    predicted = block_costs(cfg).at(12, 8)
    compiled = _compiled_flops(dataclasses.replace(cfg, critic_depth=12, actor_depth=8, unroll_blocks=True))
    assert predicted == pytest.approx(compiled, rel=1e-6)
