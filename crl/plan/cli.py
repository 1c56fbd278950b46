"""`crl plan`: what a config costs and whether it fits target devices, without allocating its training state."""
from __future__ import annotations

import argparse
import json
import sys

from crl import _platform
from crl.cli_options import options_parser, parse_options
from crl.plan.devices import DEFAULT_DEVICES

PLAN_HELP = """Plan a run before launching it: parameter, optimiser, replay-buffer and env-state bytes; each
compiled program's memory (XLA's analysis); FLOPs per SGD update and per epoch (XLA's cost analysis); env and SGD
steps; for each --device, whether it fits and a lower bound on run time, and when it does not fit the settings that
would. Takes the same config and overrides as `crl train`, e.g.
`crl plan --config paper --env ant --critic-depth 64 --actor-depth 64 --device H100-80GB`.
Nothing is allocated: shapes come from jax.eval_shape and programs are compiled from them."""



def plan_options_parser() -> argparse.ArgumentParser:
    """The options `crl plan` reads before the config fields (preset, target devices, output form)."""
    parser, plan = options_parser("crl plan", "plan options")
    plan.add_argument("--device", action="append", default=None, metavar="NAME",
                      help=f"target device to judge the run against; repeat for several (default: "
                           f"{', '.join(DEFAULT_DEVICES)})")
    plan.add_argument("--devices-file", default=None, metavar="FILE.yaml",
                      help="YAML of extra or overriding devices, `NAME: {memory_gib: 48, fp32_tflops: 91.6, ...}` "
                           "(default: %(default)s, the built-in table)")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON instead of text (default: %(default)s)")
    plan.add_argument("--no-fixes", action="store_true",
                      help="skip searching for settings that would fit a device the run does not fit "
                           "(default: %(default)s)")
    return parser


def plan_main(argv: list[str]) -> int:
    import tyro

    from crl.config import ConfigError, TrainConfig, load_yaml

    known, rest, _ = parse_options(plan_options_parser(), argv)
    try:
        default = load_yaml(known.config) if known.config else TrainConfig()
    except ConfigError as err:
        print(f"crl plan: {err}", file=sys.stderr)
        return 2
    cfg = tyro.cli(TrainConfig, default=default, args=rest, description=PLAN_HELP,
                   prog="crl plan [--config PRESET] [--device NAME ...] [--devices-file FILE.yaml] [--json] "
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
