"""Nothing lost: checkpoints, exact resume after SIGTERM, corrupt-checkpoint fallback, NaN guard."""
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest
import yaml

from tiny_run import tiny_config

from crl import envs
from crl.checkpoint import Checkpointer
from crl.config import ConfigError, TrainConfig, plan_steps, to_dict
from crl.preemption import PREEMPT_EXIT_CODE
from crl.train import NonFiniteError, make_trainer, train

EPOCHS = 6
TIMING_KEYS = ("wall_s", "training/sps")  # wall-clock dependent; everything else must match exactly
KILL_AFTER_RECORDS = 3  # epoch 0 + two trained epochs logged
SUBPROCESS_TIMEOUT_S = 240


def budget(epochs: int) -> int:
    """total_env_steps for `epochs` epochs of TINY_RUN's step plan (prefill, training steps per epoch)."""
    cfg = tiny_config()
    plan = plan_steps(cfg, envs.spec(cfg.env).episode_length)
    return plan.prefill_env_steps + epochs * plan.env_steps_per_epoch


def small(run_dir, **changes) -> TrainConfig:
    """TINY_RUN's shapes and step plan over EPOCHS epochs: its compiled programs come from the disk cache."""
    values = dict(num_epochs=EPOCHS, total_env_steps=budget(EPOCHS), run_dir=str(run_dir), random_baseline=False,
                  keep_checkpoints=2)
    values.update(changes)
    return tiny_config(**values)


def records(run_dir) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def comparable(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in TIMING_KEYS and not k.startswith("time/")}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("straight")
    train(small(run_dir))
    return run_dir


def test_sigterm_then_resume_is_bit_identical(uninterrupted, tmp_path):
    run_dir = tmp_path / "killed"
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({k: v for k, v in to_dict(small(run_dir)).items() if k != "run_dir"}))
    cmd = [sys.executable, "-m", "crl.cli", "train", "--config", str(config), "--run-dir", str(run_dir)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    deadline = time.time() + SUBPROCESS_TIMEOUT_S
    metrics = run_dir / "metrics.jsonl"
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= KILL_AFTER_RECORDS:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=SUBPROCESS_TIMEOUT_S)
    assert proc.returncode == PREEMPT_EXIT_CODE, (proc.returncode, out, err)
    assert "stopped by SIGTERM" in err and "crl train --resume" in err
    stopped_at = records(run_dir)[-1]["epoch"]
    assert stopped_at < EPOCHS, "the run finished before the signal; make epochs longer"
    assert Checkpointer(run_dir, 2, True).steps()[-1] == stopped_at  # saved on the way out

    resumed = subprocess.run([sys.executable, "-m", "crl.cli", "train", "--resume", str(run_dir), "--progress"],
                             capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from {run_dir / 'checkpoints' / str(stopped_at)}" in resumed.stdout
    got, want = records(run_dir), records(uninterrupted)
    assert [r["epoch"] for r in got] == list(range(EPOCHS + 1))
    assert [comparable(r) for r in got] == [comparable(r) for r in want]


def test_a_stop_signal_in_the_last_epoch_ends_the_run_done(tmp_path):
    """SLURM's pre-timeout warning can land during the last epoch: the run is complete, so it ends as done
    (no Preempted, exit 0) with its final checkpoint, rather than asking to be requeued for nothing."""
    cfg = small(tmp_path, num_epochs=2, total_env_steps=budget(2), progress=True)

    def signal_in_last_epoch(line: str) -> None:
        if line.split()[:2] == ["epoch", f"{cfg.num_epochs}/{cfg.num_epochs}"]:
            os.kill(os.getpid(), signal.SIGTERM)

    result = train(cfg, print_fn=signal_in_last_epoch)
    assert [r["epoch"] for r in result.history] == [0, 1, 2]
    assert Checkpointer(tmp_path, 2, True).steps()[-1] == cfg.num_epochs


def _copy_run(run_dir, tmp_path, name: str) -> Path:
    """A copy of a finished run (checkpoints with their small buffers), for tests that move or break files."""
    return Path(shutil.copytree(run_dir, tmp_path / name))


def abstract_state(trainer):
    from crl.programs import make_programs

    return jax.eval_shape(make_programs(trainer).init)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_newest_checkpoint_falls_back_to_previous(uninterrupted, tmp_path, damage):
    run_dir = _copy_run(uninterrupted, tmp_path, damage)
    newest = run_dir / "checkpoints" / str(EPOCHS)
    files = sorted((p for p in (newest / "state").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    if damage == "garbage":  # every file of the state overwritten
        for path in files:
            path.write_bytes(b"\0garbage" * 3)
    else:  # a save cut short: the largest data file loses its second half, the tree's record is gone
        files[-1].write_bytes(files[-1].read_bytes()[: files[-1].stat().st_size // 2])
        (newest / "state" / "_METADATA").unlink()
    messages = []
    trainer = make_trainer(small(run_dir))
    restored = Checkpointer(run_dir, 2, True).restore_latest(abstract_state(trainer), log=messages.append)
    assert restored.epoch == EPOCHS - 1
    assert any(str(newest) in m and "could not be restored" in m for m in messages)
    assert list((run_dir / "checkpoints_unreadable").glob(f"{EPOCHS}-*"))  # kept for inspection, not deleted
    if damage == "garbage":
        result = train(small(run_dir), trainer=trainer)  # resumes from the previous epoch and finishes the run
        assert [r["epoch"] for r in result.history] == list(range(EPOCHS + 1))
        assert (run_dir / "checkpoints" / str(EPOCHS)).exists()


RESTORE_FAILURES = {  # injected error -> words the CheckpointRestoreError must hold
    "eio": (OSError(errno.EIO, "Input/output error"), "I/O error"),
    "memory": (MemoryError(), "out of memory"),
    "xla_oom": (jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 6.00GiB"),
                "out of memory"),
    "unexpected": (RuntimeError("a bug, not the files"), "unexpected error"),
}


@pytest.mark.parametrize("failure", sorted(RESTORE_FAILURES))
def test_restore_failures_that_are_not_corruption_leave_every_checkpoint(uninterrupted, tmp_path, monkeypatch,
                                                                          failure):
    import orbax.checkpoint as ocp

    from crl.checkpoint import CheckpointRestoreError

    error, words = RESTORE_FAILURES[failure]
    run_dir = _copy_run(uninterrupted, tmp_path, failure)
    ckpt = Checkpointer(run_dir, 2, True)
    before = ckpt.steps()

    def failing_restore(self, directory, *args, **kwargs):
        raise error

    monkeypatch.setattr(ocp.PyTreeCheckpointHandler, "restore", failing_restore)
    with pytest.raises(CheckpointRestoreError, match=words) as err:
        ckpt.restore_latest(abstract_state(make_trainer(small(run_dir))))
    assert str(run_dir / "checkpoints" / str(before[-1])) in str(err.value) and "left in place" in str(err.value)
    assert ckpt.steps() == before and not (run_dir / "checkpoints_unreadable").exists()
    ckpt.close()


def test_restore_errors_exit_2_with_one_line(uninterrupted, tmp_path, monkeypatch, capsys):
    import orbax.checkpoint as ocp

    from crl import cli

    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"num_epochs": 3}))
    assert cli.main(["train", "--config", str(config), "--resume", str(uninterrupted)]) == 2
    assert "--config and --resume" in capsys.readouterr().err

    def out_of_memory(self, directory, *args, **kwargs):
        raise MemoryError()

    run_dir = _copy_run(uninterrupted, tmp_path, "oom")
    with monkeypatch.context() as patch:
        patch.setattr(ocp.PyTreeCheckpointHandler, "restore", out_of_memory)
        assert cli.main(["train", "--resume", str(run_dir), "--num-epochs", str(EPOCHS + 1)]) == 2
    err = capsys.readouterr().err.strip()
    assert "out of memory" in err and "\n" not in err and "Traceback" not in err
    for step in Checkpointer(run_dir, 2, True).steps():  # every checkpoint broken: none can be restored
        (run_dir / "checkpoints" / str(step) / "state" / "_METADATA").write_text("{")
    assert cli.main(["train", "--resume", str(run_dir), "--num-epochs", str(EPOCHS + 1)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("crl train: none of the checkpoints") and "\n" not in err


def test_read_only_restore_reads_no_buffer(uninterrupted, monkeypatch):
    """crl eval / viz / render restore the params and counters, never the replay buffer or env state."""
    from orbax.checkpoint._src.handlers import base_pytree_checkpoint_handler as handler

    from crl.policy import restore_run
    from crl.viz.run_view import load_run_view

    read = []
    batch = handler.batched_serialization_requests

    def spy(*args, **kwargs):
        requests = batch(*args, **kwargs)
        read.extend(str(key) for request in requests for key in request.keys)
        return requests

    monkeypatch.setattr(handler, "batched_serialization_requests", spy)
    trainer, restored = restore_run(uninterrupted)
    assert restored.state.buffer is None and restored.state.env_state is None
    assert restored.state.actor_params is not None and int(restored.state.env_steps) > 0
    view = load_run_view(uninterrupted)
    assert view.critic_params is not None and view.env_steps == int(restored.state.env_steps)
    assert read and not [key for key in read if "buffer" in key or "env_state" in key or "opt_state" in key]
    read.clear()
    Checkpointer(uninterrupted, 2, True).restore_latest(abstract_state(trainer))  # a full restore reads them
    assert [key for key in read if "buffer" in key]


def test_nan_stops_with_message_and_keeps_last_good_checkpoint(tmp_path):
    cfg = small(tmp_path / "nan")
    trainer = make_trainer(cfg)
    per_epoch = trainer.plan.train_steps_per_epoch * cfg.sgd_steps_per_train_step
    clean_step = trainer.sgd_step

    def poisoned(state, batch_and_key):  # the critic loss turns NaN during epoch 3
        state, metrics = clean_step(state, batch_and_key)
        bad = state.grad_steps > 2 * per_epoch
        return state, {**metrics, "critic_loss": jnp.where(bad, jnp.nan, metrics["critic_loss"])}

    trainer.sgd_step = poisoned
    with pytest.raises(NonFiniteError) as err:
        train(cfg, trainer=trainer)
    message = str(err.value)
    assert "epoch 3" in message and "training/critic_loss" in message
    assert str(tmp_path / "nan" / "checkpoints" / "2") in message
    assert Checkpointer(cfg.run_dir, 2, True).steps() == [1, 2]


def test_resume_without_saved_buffer_refills(tmp_path, capsys):
    run_dir = tmp_path / "nobuf"
    train(small(run_dir, num_epochs=2, total_env_steps=budget(2), checkpoint_buffer_mb=0))
    meta = json.loads(next((run_dir / "checkpoints" / "2" / "meta").glob("*")).read_text())
    assert meta["has_buffer"] is False
    result = train(small(run_dir, num_epochs=3, total_env_steps=budget(3), checkpoint_buffer_mb=0,
                         progress=True))
    out = capsys.readouterr().out
    assert "holds no replay buffer" in out and "refilling" in out
    assert [r["epoch"] for r in result.history] == [0, 1, 2, 3]
    resumes = yaml.safe_load((run_dir / "config.yaml").read_text())["resumes"]
    assert resumes[-1]["from_epoch"] == 2 and "num_epochs" in resumes[-1]["changed"]


def test_resume_refuses_shape_changes(uninterrupted):
    with pytest.raises(ConfigError, match=r"reset_mode: 'fresh' -> 'cached'; num_envs: 16 -> 32; critic_depth: 4 -> 8"):
        train(small(uninterrupted, critic_depth=8, num_envs=32, reset_mode="cached"))


def jax_key():
    import jax

    return jax.random.PRNGKey(0)


def test_crl_eval_reproduces_logged_metrics_and_exports_actor(uninterrupted, tmp_path, capsys):
    from crl import cli
    from crl.policy import load_actor, restore_run

    assert cli.main(["eval", str(uninterrupted), "--export-actor", str(tmp_path / "actor")]) == 0
    shown = json.loads(capsys.readouterr().out)
    last = records(uninterrupted)[-1]
    assert shown["epoch"] == EPOCHS
    for name in ("eval/episode_success", "eval/episode_dist", "eval/avg_episode_length"):
        assert shown[name] == last[name]
    actor = load_actor(tmp_path / "actor")
    _, restored = restore_run(uninterrupted)
    obs = jax.random.normal(jax_key(), (5, actor.meta["obs_dim"]))
    same = jax.tree.map(jnp.array_equal, actor.params, restored.state.actor_params)
    assert all(jax.tree.leaves(same))  # the exported params are the checkpoint's, bit for bit
    expected = jax.jit(actor.networks.deterministic_action)(restored.state.actor_params, obs)
    assert jnp.array_equal(actor(obs), expected) and actor(obs).shape == (5, actor.meta["action_size"])
    assert cli.main(["eval", str(uninterrupted), "--checkpoint", "99"]) == 2
    assert "no checkpoint for epoch 99" in capsys.readouterr().err


def test_nan_rollback_retries_from_last_checkpoint_then_gives_up(tmp_path):
    cfg = small(tmp_path / "rollback", nan_rollbacks=2, progress=True, checkpoint_buffer_mb=0)  # rollback refills
    trainer = make_trainer(cfg)
    per_epoch = trainer.plan.train_steps_per_epoch * cfg.sgd_steps_per_train_step
    clean_step = trainer.sgd_step

    def poisoned(state, batch_and_key):  # always NaN in epoch 3, whatever the key
        state, metrics = clean_step(state, batch_and_key)
        bad = state.grad_steps > 2 * per_epoch
        return state, {**metrics, "critic_loss": jnp.where(bad, jnp.nan, metrics["critic_loss"])}

    trainer.sgd_step = poisoned
    lines = []
    with pytest.raises(NonFiniteError, match="epoch 3"):
        train(cfg, trainer=trainer, print_fn=lines.append)
    rolled = [line for line in lines if "rolled back to epoch 2" in line]
    assert len(rolled) == 2 and "rollback 2 of 2" in rolled[-1]
    assert [r["epoch"] for r in records(cfg.run_dir)] == [0, 1, 2]  # nothing logged for the failed epochs
    assert Checkpointer(cfg.run_dir, 2, True).steps() == [1, 2]


def test_nonfinite_parameters_are_caught(tmp_path):
    cfg = small(tmp_path / "params", num_epochs=2, total_env_steps=budget(2))
    trainer = make_trainer(cfg)
    clean_step = trainer.sgd_step

    def poison_params(state, batch_and_key):  # losses stay finite, one critic weight becomes Inf
        state, metrics = clean_step(state, batch_and_key)
        critic = jax.tree.map(lambda p: p.at[(0,) * p.ndim].set(jnp.inf), state.critic_params)
        return state.replace(critic_params=critic), metrics

    trainer.sgd_step = poison_params
    with pytest.raises(NonFiniteError, match=r"epoch 1: non-finite .*parameters \(\d+ entries\)"):
        train(cfg, trainer=trainer)


def test_keeps_last_k_and_the_best(tmp_path):
    ckpt = Checkpointer(tmp_path, keep_last=2, keep_best=True)
    for epoch, headline in zip(range(1, 6), [5.0, 1.0, 2.0, 3.0, 4.0]):  # epoch 1 is the best
        ckpt.save(epoch, {"w": jnp.full((3,), float(epoch))}, {"config": {}}, headline, include_buffer=True)
    assert ckpt.steps() == [1, 4, 5]
    ckpt.close()


def test_zero_size_arrays_round_trip(tmp_path):
    """MJX physics states hold zero-size arrays (e.g. `act`), which orbax refuses to write by itself."""
    state = {"w": jnp.arange(3.0), "act": jnp.zeros((4, 0)), "n": jnp.zeros((0,), jnp.int32)}
    ckpt = Checkpointer(tmp_path, keep_last=2, keep_best=False)
    ckpt.save(1, state, {"config": {}}, 0.0, include_buffer=True)
    restored = ckpt.restore_latest(jax.tree.map(jnp.zeros_like, state)).state
    assert restored["act"].shape == (4, 0) and restored["n"].shape == (0,) and restored["n"].dtype == jnp.int32
    assert restored["w"].tolist() == [0.0, 1.0, 2.0]
    ckpt.close()
