"""`crl bench envs`: environment steps per second for every registered id (or some), per backend.

One jitted `lax.scan` of `vmap(env.step)` with uniform random actions in [-1, 1] is compiled per
(id, backend, num_envs) and timed on repeated calls (median), reset excluded. The report (--out, by
default a fresh runs/bench/envs-<date-time>/) is rewritten after every measurement, so an interrupted
sweep keeps what it measured.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import jax
import numpy as np

from crl._platform import enable_compilation_cache

DEFAULT_NUM_ENVS = (256,)
DEFAULT_STEPS = 50
DEFAULT_REPS = 3


def measure(name: str, num_envs: int, steps: int, reps: int, backend: str | None = None) -> dict:
    """Compile and time `steps` batched steps of env `name`; returns a row for the table."""
    from crl import envs

    env = envs.make(name, **({"backend": backend} if backend else {}))
    keys = jax.random.split(jax.random.PRNGKey(0), num_envs)
    state = jax.jit(jax.vmap(env.reset))(keys)

    def rollout(state, key):
        def body(s, k):
            a = jax.random.uniform(k, (num_envs, env.action_size), minval=-1.0, maxval=1.0)
            return jax.vmap(env.step)(s, a), None

        return jax.lax.scan(body, state, jax.random.split(key, steps))[0]

    start = time.perf_counter()
    compiled = jax.jit(rollout).lower(state, jax.random.PRNGKey(1)).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(compiled(state, jax.random.PRNGKey(2)))  # warm-up
    times = []
    for rep in range(reps):
        start = time.perf_counter()
        out = jax.block_until_ready(compiled(state, jax.random.PRNGKey(3 + rep)))
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    spec = env.spec
    return {"env": name, "backend": spec.backend, "num_envs": num_envs, "steps": steps, "state_dim": spec.state_dim,
            "action_size": spec.action_size, "dt": spec.dt, "compile_s": compile_s, "rollout_s_median": median,
            "rollout_s_all": times, "env_steps_per_s": num_envs * steps / median,
            "finite": bool(np.isfinite(np.asarray(out.obs)).all())}


def _table(rows: list[dict]) -> list[str]:
    table = ["| env | backend | envs | state | action | dt s | compile s | env steps/s (median) | sim s per wall s | finite |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        table.append(f"| {r['env']} | {r['backend']} | {r['num_envs']} | {r['state_dim']} | {r['action_size']} | "
                     f"{r['dt']:g} | {r['compile_s']:.1f} | {r['env_steps_per_s']:,.0f} | "
                     f"{r['env_steps_per_s'] * r['dt']:,.0f} | {'yes' if r['finite'] else 'NO'} |")
    return table


def bench_envs(args: argparse.Namespace) -> int:
    from crl import envs
    from crl.bench import write_results

    enable_compilation_cache()
    ids = args.ids or envs.list_envs()
    for name in ids:
        try:
            envs.check_name(name)  # before any compile
        except (KeyError, ValueError) as err:
            raise SystemExit(f"crl bench envs: {err}") from None
    rows = []
    notes = [f"One jitted scan of {args.steps} batched steps with uniform random actions, timed {args.reps} times "
             "after a warm-up call (median); reset and compile excluded. 'sim s per wall s' = env steps/s x dt. "
             "'finite' = every observation after the timed rollouts is finite.",
             "Measured one id after another on a shared machine: compare rows of one run, not across runs.",
             "compile s is with JAX's persistent compilation cache on: ids that share a model (a layout and its "
             "_eval or stitching variants) load the first one's program instead of compiling it."]
    total = len(ids) * len(args.num_envs) * len(args.backends or [None])
    for name in ids:
        for backend in args.backends or [None]:
            for num_envs in args.num_envs:
                try:
                    row = measure(name, num_envs, args.steps, args.reps, backend)
                except Exception as err:  # report and go on: one broken id must not lose the sweep
                    print(f"[{len(rows) + 1}/{total}] {name} backend={backend}: FAILED {type(err).__name__}: {err}",
                          file=sys.stderr, flush=True)
                    continue
                rows.append(row)
                print(f"[{len(rows)}/{total}] {name:<32} {row['backend']:<11} {num_envs:>5} envs: "
                      f"{row['env_steps_per_s']:>12,.0f} env steps/s (compile {row['compile_s']:.1f} s)", flush=True)
                write_results(args.out, "Environment steps per second", "crl " + " ".join(sys.argv[1:]),
                              _table(rows), notes, rows, quiet=True)
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")
    return 0


def add_parser(sub) -> None:
    from crl.bench import out_help  # crl.bench imports this module: import back only once both are loaded

    p = sub.add_parser("envs", help="env steps/s for every registered id (or --ids), per backend")
    p.add_argument("--ids", nargs="+", default=None, metavar="ID",
                   help="env ids, see `crl envs` (default: every registered id)")
    p.add_argument("--num-envs", type=int, nargs="+", default=list(DEFAULT_NUM_ENVS),
                   help="batch sizes to time, one row each (default: %(default)s)")
    p.add_argument("--backends", nargs="+", default=None,
                   help="override each env's backend, one row each (e.g. spring mjx) (default: the env's own)")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                   help="batched env steps per timed rollout (default: %(default)s)")
    p.add_argument("--reps", type=int, default=DEFAULT_REPS,
                   help="timed rollouts after a warm-up; the median is reported (default: %(default)s)")
    p.add_argument("--out", default=None, metavar="PATH.md", help=out_help("envs"))
    p.set_defaults(run=bench_envs)
