"""Benchmarks: compile time and SGD-update time against depth (and its parts); training throughput; env steps/s;
vmapped seeds.

Each writes a Markdown report (median, ratio, device, versions, command) plus raw JSON beside it, by default to
a fresh runs/bench/<bench>-<date-time>/ so no earlier result (e.g. the published docs/bench_*.md) is replaced;
--out PATH.md chooses the file.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import jax

from crl import bench_envs, bench_seeds
from crl._platform import enable_compilation_cache, training_compiler_options
from crl.config import TrainConfig, plan_steps
from crl.envs.spec import EnvSpec
from crl.agents import contrastive
from crl.losses import LOGITS_FORMS, Batch
from crl.networks import param_count
from crl.run import library_versions
from crl.train import init_learner_state, train

# The reference's ant dimensions (state 29, goal = torso xy, 8 actions): shapes only, no simulator needed.
ANT_SHAPES = EnvSpec(name="ant-shapes", backend="none", state_dim=29, goal_indices=(0, 1), action_size=8,
                     episode_length=1000, dt=0.05, success_radius=0.5)
DEFAULT_DEPTHS = (4, 16, 64, 256, 1024)
DEFAULT_MAX_UNROLLED_DEPTH = 64  # unrolled compile grows with depth; beyond this it takes many minutes on CPU
DEFAULT_BATCH = 256
DEFAULT_REPS = 5
FLOOR_WIDTH = 256  # the networks' width: the matmul floor times (batch, 256) @ (256, 256) products
DEFAULT_UPDATES_PER_CALL = 10  # `crl bench networks`: updates per timed program (an epoch scans many; see time_sgd_update)
FLOOR_CHAIN = 64  # matmuls per timed floor program (one dispatch: launch overhead spread thin)
FLOPS_PER_MAC = 2
# The reference implementation's training env steps/s on a 2-core CPU (ant, depth 4, batch 256, unroll 62),
# median of its epochs, keyed by num_envs, with the SGD steps per training step it used there.
REFERENCE_CPU = {32: {"sgd_steps": 50, "sps": 458.0}, 128: {"sgd_steps": 198, "sps": 394.0}}
DEFAULT_OUT_ROOT = Path("runs") / "bench"
OUT_TIMESTAMP = "%Y%m%d-%H%M%S"


def default_out(bench: str, now: time.struct_time | None = None) -> Path:
    """A path no earlier invocation used: runs/bench/<bench>-<date-time>/bench_<bench>.md under the working dir."""
    stamp = time.strftime(OUT_TIMESTAMP, now or time.localtime())
    return DEFAULT_OUT_ROOT / f"{bench}-{stamp}" / f"bench_{bench}.md"


def resolve_out(bench: str, out: str | None) -> Path:
    """--out as given, else a fresh default_out; refuses a path that is not a Markdown file."""
    path = Path(out) if out else default_out(bench)
    if path.suffix != ".md":
        raise SystemExit(f"crl bench {bench}: --out {out} must end in .md (the JSON is written beside it as .json)")
    return path


def out_help(bench: str) -> str:
    """The --out help of `crl bench <bench>`, naming its default."""
    return (f"Markdown report path; the raw JSON goes beside it (default: a new "
            f"{DEFAULT_OUT_ROOT / f'{bench}-<date-time>' / f'bench_{bench}.md'}, so no earlier result is replaced)")


def machine_description() -> str:
    devices = jax.devices()
    kind = devices[0].device_kind if devices else "unknown"
    return (f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPU cores; "
            f"jax backend {jax.default_backend()} ({len(devices)} x {kind})").replace("  ", " ")


def _random_batch(spec: EnvSpec, batch_size: int, key: jax.Array) -> Batch:
    k1, k2, k3 = jax.random.split(key, 3)
    return Batch(state=jax.random.normal(k1, (batch_size, spec.state_dim)),
                 action=jax.random.uniform(k2, (batch_size, spec.action_size), minval=-1, maxval=1),
                 goal=jax.random.normal(k3, (batch_size, spec.goal_dim)))


def update_inputs(cfg: TrainConfig) -> tuple[Any, Any, Batch, jax.Array]:
    """(CRL agent, fresh learner state, random batch, SGD key) at cfg's shapes on ant, from fixed keys."""
    agent = contrastive.build(ANT_SHAPES, cfg)
    init_key, batch_key, key = jax.random.split(jax.random.PRNGKey(0), 3)
    state = init_learner_state(agent, init_key)  # donated by callers that time donated updates: keep `key` apart
    return agent, state, _random_batch(ANT_SHAPES, cfg.batch_size, batch_key), key


def update_compiler_options() -> dict[str, bool]:
    """The XLA options a training epoch on ant compiles its updates with (crl.programs.epoch_compiler_options)."""
    return training_compiler_options(legacy_fusion=ANT_SHAPES.cpu_legacy_fusion)


def time_sgd_update(depth: int, batch_size: int, unrolled: bool, remat: bool, dtype: str, reps: int,
                    updates_per_call: int = 1, logits_form: str = TrainConfig.logits_form) -> dict:
    """Compile `updates_per_call` full SGD updates (actor, alpha, critic + Adam) at `depth` as one scan, the way
    a training epoch runs them (state donated once per call); time the compile and the median update."""
    cfg = TrainConfig(critic_depth=depth, actor_depth=depth, batch_size=batch_size, unroll_blocks=unrolled,
                      remat=remat, compute_dtype=dtype, logits_form=logits_form)
    agent, state, batch, key = update_inputs(cfg)
    batches = jax.tree.map(lambda x: jax.numpy.broadcast_to(x, (updates_per_call, *x.shape)), batch)
    xs = (batches, jax.random.split(key, updates_per_call))

    def updates(state, xs):
        return jax.lax.scan(agent.sgd_step, state, xs)

    t0 = time.perf_counter()
    compiled = jax.jit(updates, donate_argnums=0, compiler_options=update_compiler_options()).lower(
        state, xs).compile()
    compile_s = time.perf_counter() - t0
    memory = compiled.memory_analysis()
    state, _ = compiled(state, xs)  # warm-up
    jax.block_until_ready(state.grad_steps)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        state, metrics = compiled(state, xs)
        jax.block_until_ready(metrics)
        times.append((time.perf_counter() - t) / updates_per_call)
    return {"depth": depth, "mode": "unrolled" if unrolled else "scan", "remat": remat, "dtype": dtype,
            "batch": batch_size, "compile_s": compile_s, "step_ms_median": 1e3 * statistics.median(times),
            "step_ms_min": 1e3 * min(times), "reps": reps, "updates_per_call": updates_per_call,
            "temp_bytes": getattr(memory, "temp_size_in_bytes", None),
            "params": param_count(state.critic_params) + param_count(state.actor_params)}


def matmul_floor_flops_per_s(batch: int, width: int, dtype: str, reps: int, chain: int = FLOOR_CHAIN) -> float:
    """FLOP/s of a chain of (batch, width) @ (width, width) matmuls in one jitted program, median of `reps`: the
    rate the SGD update's FLOPs would run at if they were all matmuls of the networks' shape (its floor)."""
    x_key, w_key = jax.random.split(jax.random.PRNGKey(1))
    x = jax.random.normal(x_key, (batch, width), dtype)
    w = (jax.random.normal(w_key, (width, width), jax.numpy.float32) / width ** 0.5).astype(dtype)  # norms stay ~1

    def products(x, w):
        for _ in range(chain):
            x = x @ w
        return x

    seconds = median_call_seconds(jax.jit(products).lower(x, w).compile(), (x, w), reps)
    return FLOPS_PER_MAC * batch * width * width * chain / seconds


def median_call_seconds(compiled: Callable, args: tuple, reps: int) -> float:
    """Median wall time of `reps` calls of a compiled program after one warm-up call (arguments not donated)."""
    jax.block_until_ready(compiled(*args))
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def with_flop_rates(row: dict, flops: float, floor_flops_per_s: float) -> dict:
    """The row with its update's FLOPs, the achieved GFLOP/s and the ratio of its time to the matmul floor's."""
    seconds = row["step_ms_median"] / 1e3
    return {**row, "flops": flops, "gflops_per_s": flops / seconds / 1e9, "floor_gflops_per_s": floor_flops_per_s / 1e9,
            "floor_ms": 1e3 * flops / floor_flops_per_s, "x_floor": seconds * floor_flops_per_s / flops}


def write_results(out: Path, title: str, command: str, table: list[str], notes: list[str], raw: list[dict],
                  quiet: bool = False) -> None:
    """Write the Markdown report (machine, versions, command, date, table, notes) and raw JSON beside it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    versions = ", ".join(f"{k} {v}" for k, v in library_versions().items())
    lines = [f"# {title}", "", f"- Machine: {machine_description()}", f"- Versions: {versions}",
             f"- Command: `{command}`", f"- Date: {time.strftime('%Y-%m-%d')}", "", *table, "", *notes, ""]
    out.write_text("\n".join(lines))
    out.with_suffix(".json").write_text(json.dumps(raw, indent=1))
    if not quiet:
        print(f"wrote {out} and {out.with_suffix('.json')}")


def bench_networks(args: argparse.Namespace) -> int:
    from crl.plan.flops import block_costs

    # FLOPs from the unrolled program (XLA counts a scan body once), the same for scan and unrolled rows
    costs = block_costs(TrainConfig(batch_size=args.batch, remat=args.remat, compute_dtype=args.dtype,
                                    logits_form=args.logits_form))
    floor = matmul_floor_flops_per_s(args.batch, FLOOR_WIDTH, args.dtype, args.reps)
    print(f"matmul floor: {floor / 1e9:.1f} GFLOP/s ({args.batch}x{FLOOR_WIDTH} @ {FLOOR_WIDTH}x{FLOOR_WIDTH}, "
          f"{args.dtype})", flush=True)
    rows = []
    for depth in args.depths:
        for unrolled in (False, True):
            if unrolled and depth > args.max_unrolled_depth:
                continue
            timed = time_sgd_update(depth, args.batch, unrolled, args.remat, args.dtype, args.reps,
                                    args.updates_per_call, args.logits_form)
            row = with_flop_rates(timed, costs.at(depth, depth), floor)
            rows.append(row)
            print(f"depth {depth:>5} {row['mode']:>8}: compile {row['compile_s']:7.2f} s, "
                  f"update {row['step_ms_median']:9.2f} ms (median of {args.reps}), "
                  f"{row['gflops_per_s']:.1f} GFLOP/s, {row['x_floor']:.2f}x the matmul floor", flush=True)
    scan = {r["depth"]: r for r in rows if r["mode"] == "scan"}
    base = scan[min(scan)]
    table = ["| depth | mode | params (actor + critic) | compile s | compile / depth-4 scan | SGD update ms (median) | "
             "GFLOP / update | GFLOP/s | x matmul floor | XLA temp MiB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        temp = f"{r['temp_bytes'] / 2**20:.1f}" if r["temp_bytes"] is not None else "n/a"
        table.append(f"| {r['depth']} | {r['mode']} | {r['params']:,} | {r['compile_s']:.2f} | "
                     f"{r['compile_s'] / base['compile_s']:.2f}x | {r['step_ms_median']:.2f} | {r['flops'] / 1e9:.2f} | "
                     f"{r['gflops_per_s']:.1f} | {r['x_floor']:.2f}x | {temp} |")
    deepest = scan[max(scan)]
    notes = [f"Compile at depth {deepest['depth']} (scan) = {deepest['compile_s'] / base['compile_s']:.2f}x "
             f"depth {base['depth']}.",
             f"One SGD update = actor + alpha + critic losses, gradients and Adam at batch {args.batch}, "
             f"remat={args.remat}, compute dtype {args.dtype}, logits_form {args.logits_form}; ant shapes (state 29, "
             "goal 2, action 8), width 256. "
             f"Each timed call runs {args.updates_per_call} updates as one scan with the state donated once, as a "
             f"training epoch runs them; update ms = call time / {args.updates_per_call}.",
             "Compile is measured without the persistent cache. On CPU the scanned blocks run slower per update "
             "than straight-line code (compare the unrolled rows): scan is what keeps compile time flat in depth.",
             f"FLOPs: XLA's cost analysis of the unrolled update (crl.plan.flops: probes at 1 and 2 blocks, affine in "
             f"depth), the same for both modes. Matmul floor, measured in this run: {floor / 1e9:.1f} GFLOP/s for a "
             f"chain of {FLOOR_CHAIN} ({args.batch}, {FLOOR_WIDTH}) @ ({FLOOR_WIDTH}, {FLOOR_WIDTH}) products in one "
             f"program; x matmul floor = update time / (FLOPs at that rate)."]
    write_results(args.out, "Compile time and SGD update time against depth", "crl " + " ".join(sys.argv[1:]),
           table, notes, rows)
    return 0


def _bench_train_row(args: argparse.Namespace, algorithm: str, num_envs: int) -> dict:
    """Train `algorithm` on the reference's CPU config with `num_envs` envs; its env steps/s and timings."""
    sgd_steps = REFERENCE_CPU.get(num_envs, {}).get("sgd_steps", args.sgd_steps)
    base = TrainConfig(env=args.env, algorithm=algorithm, num_envs=num_envs, unroll_length=62, batch_size=256,
                       sgd_steps_per_train_step=sgd_steps, critic_depth=args.depth, actor_depth=args.depth,
                       num_eval_envs=args.eval_envs, reset_mode="cached", num_epochs=args.epochs,
                       tensorboard=False, progress=False, total_env_steps=0, logits_form=args.logits_form)
    plan = plan_steps(base, 1000)
    base.total_env_steps = plan.prefill_env_steps + args.epochs * args.train_steps * plan.env_steps_per_train_step
    with tempfile.TemporaryDirectory() as tmp:
        base.run_dir = tmp
        result = train(base, print_fn=None)
    sps = [r["training/sps"] for r in result.history[1:]]
    reference = REFERENCE_CPU.get(num_envs, {}).get("sps") if algorithm == "crl" else None
    return {"env": args.env, "algorithm": algorithm, "num_envs": num_envs, "sgd_steps": sgd_steps,
            "depth": args.depth, "sps_median": statistics.median(sps), "sps_all": sps,
            "compile_s": result.history[0]["time/compile_s"],
            "epoch_s_median": statistics.median(r["time/epoch_s"] for r in result.history[1:]),
            "eval_s_median": statistics.median(r["time/eval_s"] for r in result.history[1:]),
            "reference_sps": reference}


def bench_train(args: argparse.Namespace) -> int:
    """Training env steps/s (evaluation excluded, like the reference's training/sps) on the reference's CPU configs."""
    enable_compilation_cache()
    results = []
    for algorithm in args.algorithms:
        for num_envs in args.num_envs:
            results.append(_bench_train_row(args, algorithm, num_envs))
            print(json.dumps(results[-1]), flush=True)
    table = ["| env | algorithm | num_envs | SGD steps / training step | depth | crl env steps/s (median) | reference env steps/s (2-core CPU) | ratio | compile s | train s / epoch | eval s / epoch |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        ref = r["reference_sps"]
        ratio = f"{r['sps_median'] / ref:.2f}x" if ref else "n/a"
        table.append(f"| {r['env']} | {r['algorithm']} | {r['num_envs']} | {r['sgd_steps']} | {r['depth']} | {r['sps_median']:.0f} | "
                     f"{ref or 'n/a'} | {ratio} | {r['compile_s']:.1f} | {r['epoch_s_median']:.2f} | "
                     f"{r['eval_s_median']:.2f} |")
    notes = [f"Config as the reference's CPU measurement: width 256, batch 256, unroll 62, episode 1000, "
             f"cached resets, logits_form {args.logits_form}, {args.train_steps} training steps per epoch, "
             f"{args.epochs} epochs, {args.eval_envs} eval envs. "
             "env steps/s = env steps of the jitted training epoch / its wall time (evaluation excluded, "
             "the reference's training/sps); crl compiles ahead of time, so every epoch counts.",
             "The reference implementation's figures were measured on a 2-core CPU machine, the reference using "
             "about one core; crl's were measured here, not side by side in one run.",
             "compile s is with JAX's persistent compilation cache on (a warm cache makes it a load, not a "
             "compile); eval s = 128 envs x 1,000 steps (the reference: ~16 s per epoch)."]
    write_results(args.out, f"Training throughput on {args.env} (CPU)", "crl " + " ".join(sys.argv[1:]),
           table, notes, results)
    return 0


def add_update_options(parser: argparse.ArgumentParser, depths: tuple[int, ...]) -> None:
    """The options of the benchmarks that time SGD updates at several depths (`networks`, `parts`)."""
    parser.add_argument("--depths", type=int, nargs="+", default=list(depths),
                        help="critic and actor depths to time (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH,
                        help="batch size of the update (default: %(default)s)")
    parser.add_argument("--max-unrolled-depth", type=int, default=DEFAULT_MAX_UNROLLED_DEPTH,
                        help="also time straight-line (unrolled) blocks up to this depth; their compile grows with "
                             "depth (default: %(default)s)")
    parser.add_argument("--reps", type=int, default=DEFAULT_REPS,
                        help="timed calls per row after a warm-up; the median is reported (default: %(default)s)")
    add_logits_form_option(parser)


def add_logits_form_option(parser: argparse.ArgumentParser) -> None:
    """--logits-form: the B x B logits' form (TrainConfig.logits_form), so the two forms can be timed apart."""
    parser.add_argument("--logits-form", choices=LOGITS_FORMS, default=TrainConfig.logits_form,
                        help="B x B logits as the reference's broadcast or as norms + one matmul "
                             "(default: %(default)s)")


def add_networks_parser(sub) -> None:
    net = sub.add_parser("networks", help="compile time and SGD update time against depth")
    add_update_options(net, DEFAULT_DEPTHS)
    net.add_argument("--remat", action="store_true",
                     help="recompute block activations in the backward pass (default: %(default)s)")
    net.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                     help="compute dtype of the networks (default: %(default)s)")
    net.add_argument("--updates-per-call", type=int, default=DEFAULT_UPDATES_PER_CALL,
                     help="SGD updates per timed call, scanned as in a training epoch (default: %(default)s)")
    net.add_argument("--out", default=None, metavar="PATH.md", help=out_help("networks"))
    net.set_defaults(run=bench_networks)


def add_train_parser(sub) -> None:
    tr = sub.add_parser("train", help="training env steps/s on ant, beside the reference implementation's CPU figures")
    tr.add_argument("--env", default="ant", help="environment id (default: %(default)s)")
    tr.add_argument("--num-envs", type=int, nargs="+", default=[32],
                    help=f"parallel training envs, one row each; {sorted(REFERENCE_CPU)} have reference figures "
                         "(default: %(default)s)")
    tr.add_argument("--sgd-steps", type=int, default=50,
                    help="SGD steps per training step for --num-envs without a reference figure (default: %(default)s)")
    tr.add_argument("--depth", type=int, default=4, help="critic and actor depth (default: %(default)s)")
    tr.add_argument("--algorithms", nargs="+", default=["crl"], metavar="NAME",
                    help="algorithms to time, one row each per --num-envs (default: %(default)s)")
    tr.add_argument("--epochs", type=int, default=4,
                    help="epochs; the first (compile) is left out of the median (default: %(default)s)")
    tr.add_argument("--train-steps", type=int, default=6, help="training steps per epoch (default: %(default)s)")
    tr.add_argument("--eval-envs", type=int, default=128,
                    help="evaluation envs per epoch, timed apart from training (default: %(default)s)")
    add_logits_form_option(tr)
    tr.add_argument("--out", default=None, metavar="PATH.md", help=out_help("train"))
    tr.set_defaults(run=bench_train)


def build_parser() -> argparse.ArgumentParser:
    """`crl bench` and its five benchmarks' options."""
    from crl import bench_parts  # it builds on this module's pieces

    parser = argparse.ArgumentParser(prog="crl bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="which", required=True, metavar="{networks,parts,train,envs,seeds}")
    add_networks_parser(sub)
    bench_parts.add_parts_parser(sub)
    add_train_parser(sub)
    bench_envs.add_parser(sub)
    bench_seeds.add_parser(sub)
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    args.out = resolve_out(args.which, args.out)
    print(f"crl bench {args.which}: writing {args.out} and {args.out.with_suffix('.json')}", flush=True)
    return args.run(args)
