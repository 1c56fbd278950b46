"""What to tell someone who typed an unknown env id: the closest id, the id groups, where the full list is.

Jax-free (it reads only crl/env_catalog.py), so config validation and `crl sweep` can use it without
loading a simulator; crl.envs.registry builds UnknownEnvError's message from it.
"""
from __future__ import annotations

import difflib

from crl import env_catalog

CLOSE_MATCH_CUTOFF = 0.6  # difflib similarity below which no suggestion is made
GROUP_SEPARATOR = "_"  # an id's group is its first part: ant, point, humanoid, arm, ...


def closest_env(name: str, known: list[str]) -> str | None:
    """The known id most like `name`, or None when none is close enough to suggest."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=CLOSE_MATCH_CUTOFF)
    return close[0] if close else None


def id_groups(known: list[str]) -> list[str]:
    """`known` grouped by first part (`point_u_maze`, `point_big_maze` -> `point*`): a short stand-in for the list."""
    groups: dict[str, list[str]] = {}
    for name in sorted(known):
        groups.setdefault(name.split(GROUP_SEPARATOR, 1)[0], []).append(name)
    return [members[0] if len(members) == 1 else f"{head}*" for head, members in groups.items()]


def unknown_env_hint(name: str, known: list[str], families: list[str] | None = None) -> str:
    """'Did you mean ...? Ids: ... Families: ... `crl envs` lists every id ...' (families default: the built-in ones)."""
    families = list(env_catalog.FAMILIES) if families is None else families
    closest = closest_env(name, known)
    suggestion = f"Did you mean {closest!r}? " if closest else ""
    family_text = f" Families: {', '.join(families)}." if families else ""
    return (f"{suggestion}Ids: {', '.join(id_groups(known)) or '(none registered)'}.{family_text} "
            "`crl envs` lists every id with its spec.")
