"""Environment registry: a name -> factory dict, usable from user code outside the repo.

    import crl.envs
    crl.envs.register("my_env", MyEnv)          # factory: zero-arg callable or callable(**kwargs)
    env = crl.envs.make("my_env", some_option=3)
    crl.envs.spec("my_env")                     # EnvSpec (builds the env once, then cached)

Factories are stored, not called, so registering is free; an env is built only by make/spec.
`declare_specs` records specs known without building (the built-ins' catalog), which
`list_specs` returns so a listing builds nothing.
Parametric families (e.g. stitching ids `ant_<layout>_gen_<cfg>`) register an id pattern with
`register_pattern`: `make` resolves a matching name that has no factory of its own.
"""
from __future__ import annotations

import re
from typing import Any, Callable

from crl.env_names import closest_env, unknown_env_hint

from .spec import EnvSpec

Factory = Callable[..., Any]

_FACTORIES: dict[str, Factory] = {}
_SPEC_CACHE: dict[str, EnvSpec] = {}
_DECLARED_SPECS: dict[str, EnvSpec] = {}  # specs known without building the env; dropped on re-register
_PATTERNS: dict[str, tuple[re.Pattern, Callable[[re.Match], Factory]]] = {}  # description -> (regex, resolver)


def unknown_env_message(name: str, known: list[str] | None = None, patterns: list[str] | None = None) -> str:
    """One short line for an unknown id: the closest id, the id groups and families, and where the full list is."""
    known = list_envs() if known is None else known
    patterns = list_patterns() if patterns is None else patterns
    return f"unknown environment {name!r}. {unknown_env_hint(name, known, patterns)}"


class UnknownEnvError(KeyError, ValueError):
    """Raised for a name that is not registered; the message names the closest match and the id families."""

    def __init__(self, name: str, known: list[str], patterns: list[str] = ()):
        self.name = name
        self.known = known
        self.closest = closest_env(name, known)
        self.message = unknown_env_message(name, known, list(patterns))
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message


class DuplicateEnvError(ValueError):
    """Raised when registering a name that is already registered without overwrite=True."""


def register(name: str, factory: Factory, *, overwrite: bool = False) -> None:
    """Register `factory` (returns an env with a `spec: EnvSpec`) under `name`.

    Raises DuplicateEnvError if `name` is taken and overwrite is False.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"environment name must be a non-empty string, got {name!r}")
    if not callable(factory):
        raise TypeError(f"factory for {name!r} must be callable, got {type(factory).__name__}")
    if name in _FACTORIES and not overwrite:
        raise DuplicateEnvError(
            f"environment {name!r} is already registered (factory {_FACTORIES[name]!r}); "
            "pass overwrite=True to replace it"
        )
    _FACTORIES[name] = factory
    _SPEC_CACHE.pop(name, None)
    _DECLARED_SPECS.pop(name, None)


def declare_specs(specs: dict[str, EnvSpec]) -> None:
    """Record the specs of registered ids without building them (for listings); re-registering an id drops its spec.

    Raises UnknownEnvError for an id that is not registered and ValueError for a spec named otherwise.
    """
    for name, env_spec in specs.items():
        _check_known(name)
        if env_spec.name != name:
            raise ValueError(f"spec declared for {name!r} is named {env_spec.name!r}; give the id as its name")
    _DECLARED_SPECS.update(specs)


def list_specs() -> dict[str, EnvSpec]:
    """Every registered id's spec: the declared one where there is one, else built once (see `spec`)."""
    return {name: _DECLARED_SPECS.get(name) or spec(name) for name in list_envs()}


def register_pattern(description: str, pattern: re.Pattern | str, resolve: Callable[[re.Match], Factory]) -> None:
    """Resolve any unregistered name fully matching `pattern` to the factory `resolve(match)`.

    `description` (e.g. 'ant_<layout>_gen_<cfg>') names the family in listings and errors;
    `resolve` may raise ValueError to say why a matching name is still invalid.
    """
    _PATTERNS[description] = (re.compile(pattern), resolve)
    _SPEC_CACHE.clear()


def list_patterns() -> list[str]:
    """Descriptions of the registered id families."""
    return sorted(_PATTERNS)


def unregister(name: str) -> None:
    """Remove `name` from the registry (UnknownEnvError if absent)."""
    _check_known(name)
    del _FACTORIES[name]
    _SPEC_CACHE.pop(name, None)
    _DECLARED_SPECS.pop(name, None)


def list_envs() -> list[str]:
    """Sorted registered names."""
    return sorted(_FACTORIES)


def make(name: str, **kwargs: Any):
    """Build the environment registered as `name`, passing `kwargs` to its factory."""
    env = _factory(name)(**kwargs)
    env_spec = getattr(env, "spec", None)
    if not isinstance(env_spec, EnvSpec):
        raise TypeError(
            f"factory for {name!r} returned {type(env).__name__} without a `spec: EnvSpec` attribute"
        )
    return env


def spec(name: str) -> EnvSpec:
    """The EnvSpec of `name` with default arguments (builds the env on first call, then cached)."""
    if name not in _SPEC_CACHE:
        _SPEC_CACHE[name] = make(name).spec
    return _SPEC_CACHE[name]


def check_name(name: str) -> None:
    """Raise UnknownEnvError (or ValueError for a malformed family id) unless `name` can be made."""
    _factory(name)


def _factory(name: str) -> Factory:
    if name in _FACTORIES:
        return _FACTORIES[name]
    errors = []
    for pattern, resolve in _PATTERNS.values():
        match = pattern.fullmatch(name)
        if match:
            try:
                return resolve(match)
            except ValueError as err:  # another family may read the name differently
                errors.append(err)
    if errors:
        raise errors[0]
    raise UnknownEnvError(name, list_envs(), list_patterns())


def _check_known(name: str) -> None:
    if name not in _FACTORIES:
        raise UnknownEnvError(name, list_envs(), list_patterns())
