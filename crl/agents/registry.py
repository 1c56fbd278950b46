"""The algorithm registry: `register_algorithm(name, build)` (also from user code) and `build_agent(spec, cfg)`."""
from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable

from crl.config import ConfigError, TrainConfig
from crl.envs.spec import EnvSpec

from crl.agents.base import Agent


class UnknownAlgorithmError(ConfigError):
    """`algorithm` names nothing registered; the message lists the known names."""


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """A registered algorithm: build(spec, cfg) -> Agent, with a one-line description kept beside it."""

    name: str
    build: Callable[[EnvSpec, TrainConfig], Agent]
    summary: str = ""


_ALGORITHMS: dict[str, Algorithm] = {}


def register_algorithm(name: str, build: Callable[[EnvSpec, TrainConfig], Agent], summary: str = "",
                       replace: bool = False) -> Algorithm:
    """Make `algorithm: NAME` in a config build its Agent with `build(spec, cfg)`; refuses to shadow a name."""
    if name in _ALGORITHMS and not replace:
        raise ValueError(f"algorithm '{name}' is already registered; pick another name or pass replace=True")
    _ALGORITHMS[name] = Algorithm(name, build, summary)
    return _ALGORITHMS[name]


def algorithm_names() -> list[str]:
    """Registered algorithm names, built-ins first."""
    return list(_ALGORITHMS)


def get_algorithm(name: str) -> Algorithm:
    """The registered algorithm `name`; UnknownAlgorithmError with the known names (and the closest) otherwise."""
    if name in _ALGORITHMS:
        return _ALGORITHMS[name]
    close = difflib.get_close_matches(name, list(_ALGORITHMS), n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise UnknownAlgorithmError(f"algorithm = '{name}': unknown algorithm.{hint} Known algorithms: "
                                f"{', '.join(_ALGORITHMS)} (register more with crl.agents.register_algorithm)")


def build_agent(spec: EnvSpec, cfg: TrainConfig) -> Agent:
    """The configured algorithm's Agent for an environment."""
    return get_algorithm(cfg.algorithm).build(spec, cfg)
