"""Shared test set-up: CPU XLA flags and the persistent compilation cache, before jax loads."""
import crl  # noqa: F401  (appends the CPU XLA flag before jax is imported)
from crl import _platform

_platform.enable_compilation_cache()

# The files that take longest on a 2-core CPU (cold compile cache), longest first. `make test` runs the
# suite on 2 pytest-xdist workers, one file per worker at a time, handed out in collection order: starting
# the long files first keeps one worker from finishing minutes before the other.
LONGEST_FIRST = ("test_slurm.py", "test_scale.py", "test_envs.py", "test_arm.py", "test_checkpoint.py", "test_algorithms.py",
                 "test_train.py", "test_learners.py", "test_offline.py", "test_viz.py", "test_ant_objects.py",
                 "test_plan.py", "test_sweep.py", "test_humanoid.py", "test_small_tasks.py", "test_ogbench.py",
                 "test_update_speedups.py")


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: order within a file is kept


def pytest_report_header(config):
    """Say up front whether the tests marked slurm have a scheduler to run against."""
    from slurm_cluster import slurm_problem

    problem = slurm_problem()
    return "slurm: " + ("a scheduler answers (tests/test_slurm.py runs against it)" if problem is None else
                        f"none ({problem}); tests/test_slurm.py will be skipped: launch/local_slurm/up.sh starts one")
