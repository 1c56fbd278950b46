"""The options a config-taking command reads before tyro parses the config fields, and their help section."""
from __future__ import annotations

import argparse

HELP_FLAGS = ("-h", "--help")
CONFIG_HELP = ("preset to start from: a shipped preset's name (quickstart, paper/ant_big_maze) or a YAML file "
               "(default: %(default)s, the built-in defaults)")


def options_parser(prog: str, title: str) -> tuple[argparse.ArgumentParser, argparse._ArgumentGroup]:
    """(parser, its one option group) with `--config` added; the group's title heads the help section."""
    parser = argparse.ArgumentParser(prog=prog, add_help=False, allow_abbrev=False, usage=argparse.SUPPRESS)
    group = parser.add_argument_group(f"{title} (before the config fields; see also the fields table below)")
    group.add_argument("--config", default=None, metavar="PRESET", help=CONFIG_HELP)
    return parser, group


def parse_options(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[argparse.Namespace, list[str], bool]:
    """(options, the config-field arguments left for tyro, whether help was asked); prints this section's help
    when asked, as tyro's table that follows lists only the config fields."""
    known, rest = parser.parse_known_args(argv)
    wants_help = any(flag in rest for flag in HELP_FLAGS)
    if wants_help:
        print(parser.format_help())
    return known, rest, wants_help
