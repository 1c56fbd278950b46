"""User modules named in CRL_PLUGINS, imported before a command runs, so their `register_algorithm` /
`crl.envs.register` calls hold in `crl train`, `crl sweep` and every run a sweep launches (it inherits the
environment variable)."""
from __future__ import annotations

import importlib
import os

PLUGINS_VAR = "CRL_PLUGINS"  # comma-separated importable module names, e.g. CRL_PLUGINS=my_lab.algos


class PluginError(ImportError):
    """A module named in CRL_PLUGINS could not be imported; the message names it and the fix."""


def plugin_modules(value: str | None = None) -> list[str]:
    """The module names in CRL_PLUGINS (or in `value`), blanks dropped."""
    text = os.environ.get(PLUGINS_VAR, "") if value is None else value
    return [name.strip() for name in text.split(",") if name.strip()]


def load_plugins() -> list[str]:
    """Import every CRL_PLUGINS module (once; Python caches imports) and return their names."""
    names = plugin_modules()
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise PluginError(f"{PLUGINS_VAR}={os.environ[PLUGINS_VAR]!r}: cannot import '{name}' ({err}); put the "
                              f"module on PYTHONPATH (or pip install it) or remove it from {PLUGINS_VAR}") from err
    return names
