"""Which folders a path typed into the app may name: only those under the configured roots.

A server that a whole class opens must not read whatever path a student types. Every RUN_DIR and
dataset root typed in the sidebar is resolved (``..`` and symbolic links followed to where they
really lead) and accepted only inside one of the roots: the folders listed in the environment
variable ``SPG_APP_ROOTS`` (separated by ``os.pathsep``, e.g. ``/data:/home/teacher/runs``), or by
default the folder the app was started from and the shipped runs.
"""
from __future__ import annotations

import os
from pathlib import Path

from spg_core.runs import SHIPPED_DIR

ROOTS_VARIABLE = "SPG_APP_ROOTS"


class PathRefused(ValueError):
    """A typed path outside the allowed roots, with the fix in the message."""


def allowed_roots() -> list[Path]:
    """The resolved roots typed paths may lie under (read at every call: set before starting)."""
    listed = [part for part in os.environ.get(ROOTS_VARIABLE, "").split(os.pathsep) if part.strip()]
    roots = [Path(part).expanduser() for part in listed] if listed else [Path.cwd()]
    return [root.resolve() for root in [*roots, SHIPPED_DIR]]


def allowed_path(text: str) -> Path:
    """The real location of a typed path (relative paths start at the app's folder), if it lies
    under an allowed root; else ``PathRefused`` naming the path and how to allow it."""
    typed = Path(str(text).strip()).expanduser()
    real = (typed if typed.is_absolute() else Path.cwd() / typed).resolve()
    roots = allowed_roots()
    if any(real == root or real.is_relative_to(root) for root in roots):
        return real
    shown = ", ".join(str(root) for root in roots)
    raise PathRefused(f"{text!r} leads to {real}, outside the folders this app may read ({shown}). Put it under one "
                      f"of them, or start the app with {ROOTS_VARIABLE}=/that/folder (several: separated by "
                      f"'{os.pathsep}').")
