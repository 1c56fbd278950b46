"""`crl plan`: what a config costs and whether it fits target devices, without allocating its training state."""
from __future__ import annotations

import argparse
import json
import sys

from crl import _platform
from crl.plan.devices import DEFAULT_DEVICES

PLAN_HELP = """Plan a run before launching it: parameter, optimiser, replay-buffer and env-state bytes; each
compiled program's memory (XLA's analysis); FLOPs per SGD update and per epoch (XLA's cost analysis); env and SGD
steps; for each --device, whether it fits and a lower bound on run time, and when it does not fit the settings that
would. Takes the same config and overrides as `crl train`, e.g.
`crl plan --config configs/paper.yaml --env ant --critic-depth 64 --actor-depth 64 --device H100-80GB`.
Nothing is allocated: shapes come from jax.eval_shape and programs are compiled from them."""


def plan_main(argv: list[str]) -> int:
    import tyro

    from crl.config import ConfigError, TrainConfig, load_yaml

    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--config", default=None)
    pre.add_argument("--device", action="append", default=None, metavar="NAME")
    pre.add_argument("--devices-file", default=None, metavar="FILE.yaml")
    pre.add_argument("--json", action="store_true")
    pre.add_argument("--no-fixes", action="store_true")
    known, rest = pre.parse_known_args(argv)
    try:
        default = load_yaml(known.config) if known.config else TrainConfig()
    except ConfigError as err:
        print(f"crl plan: {err}", file=sys.stderr)
        return 2
    cfg = tyro.cli(TrainConfig, default=default, args=rest, description=PLAN_HELP,
                   prog="crl plan [--config FILE.yaml] [--device NAME ...] [--devices-file FILE.yaml] [--json] "
                        "[--no-fixes]")
    _platform.enable_compilation_cache()
    from crl.plan.advice import Fixer, judge
    from crl.plan.devices import load_devices, pick
    from crl.plan.planner import make_plan, replan_peak
    from crl.plan.report import to_json, to_text

    try:
        devices = pick(load_devices(known.devices_file), known.device or list(DEFAULT_DEVICES))
        plan = make_plan(cfg)
    except ConfigError as err:
        print(f"crl plan: invalid config: {err}", file=sys.stderr)
        return 2
    fixer = None if known.no_fixes else Fixer(plan, replan_peak)
    verdicts = [judge(plan, device, fixer) for device in devices]
    print(json.dumps(to_json(plan, verdicts), indent=1) if known.json else to_text(plan, verdicts))
    return 0
