"""Which folders a path typed into the app may name: only those under the configured roots.

A server that a whole class opens must not read whatever path a student types. Every RUN_DIR and
dataset root typed in the sidebar is resolved (``..`` and symbolic links followed to where they
really lead) and accepted only inside one of the roots: the folders listed in the environment
variable ``SPG_APP_ROOTS`` (separated by ``os.pathsep``, e.g. ``/data:/home/teacher/runs``), or by
default the folder the app was started from and the shipped runs.
"""
from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import spg_core
from spg_core.runs import SHIPPED_DIR

ROOTS_VARIABLE = "SPG_APP_ROOTS"
INSTALL_DIR = Path(spg_core.__file__).resolve().parent.parent  # the checkout, or site-packages


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
    if _under_a_root(real, allowed_roots()):
        return real
    raise PathRefused(f"{text!r} leads to {shown_path(real)}, outside the folders this app may read "
                      f"({roots_in_words()}). Put it under one of them, or start the app with "
                      f"{ROOTS_VARIABLE}=/that/folder (several: separated by '{os.pathsep}').")


def inside_roots(path: str | Path, what: str = "file") -> Path:
    """The real location of a file the app is about to open (links followed), if it lies under an
    allowed root.

    Args:
        path: the file, e.g. a run folder's checkpoint.pt or a maps folder's .npy.
        what: what the file is, for the message.

    Returns:
        The resolved path.

    Raises:
        PathRefused: naming the file (relative to its root) and where it leads.
    """
    path = Path(path)
    real = path.resolve()
    if _under_a_root(real, allowed_roots()):
        return real
    named, target = shown_path(path), shown_path(real)
    where = f"leads to {target}, outside" if named != target else "lies outside"
    raise PathRefused(f"the {what} {named} {where} the folders this app may read ({roots_in_words()}); put the "
                      f"file itself there instead of a link, or start the app with {ROOTS_VARIABLE} including "
                      "its folder.")


def _under_a_root(real: Path, roots: list[Path]) -> bool:
    return any(real == root or real.is_relative_to(root) for root in roots)


def roots_in_words() -> str:
    """The roots as a reader may be told them (never the install path).

    Returns:
        The folders of SPG_APP_ROOTS as set (or "the app's folder", the default), then "the shipped runs".
    """
    listed = [part.strip() for part in os.environ.get(ROOTS_VARIABLE, "").split(os.pathsep) if part.strip()]
    return ", ".join([*(listed or ["the app's folder"]), "the shipped runs"])


def shown_path(path: str | Path) -> str:
    """A path as the app shows it.

    Args:
        path: any path (relative paths start at the app's folder).

    Returns:
        The path relative to the root that holds it (as written, else with links followed), else
        the path as :func:`public_text` shows it.
    """
    path = Path(path)
    absolute = path if path.is_absolute() else Path.cwd() / path
    for root in sorted(allowed_roots(), key=lambda r: len(str(r)), reverse=True):
        for candidate in (Path(os.path.normpath(absolute)), absolute.resolve()):
            if candidate == root or candidate.is_relative_to(root):
                return str(candidate.relative_to(root))
    return public_text(str(path))


def public_text(text: str) -> str:
    """An error message without what a reader of the app must not learn.

    Args:
        text: the message.

    Returns:
        ``text`` with paths under a root relative to it (a folder of SPG_APP_ROOTS named alone
        stays: the reader may put files there), the install folder as ``<install>`` and a process
        id in ``/proc`` as ``<pid>``.
    """
    listed = tuple(str(Path(part.strip()).expanduser().resolve())
                   for part in os.environ.get(ROOTS_VARIABLE, "").split(os.pathsep) if part.strip())
    roots = tuple(str(root) for root in allowed_roots())
    return _scrubber(roots, listed, str(INSTALL_DIR))(str(text))


@functools.lru_cache(maxsize=8)
def _scrubber(roots: tuple[str, ...], listed: tuple[str, ...], install: str):
    """The substitution of :func:`public_text` for these roots, listed roots and install folder."""
    # Longest first: a root inside the install folder (the shipped runs) wins over it. A root of
    # one part ("/") would rewrite every path: not shortened.
    prefixes = sorted({*(root for root in roots if len(Path(root).parts) > 1), install}, key=len, reverse=True)

    def replacement(prefix: str):
        def replace(match: re.Match) -> str:
            if match.group(1):  # a path under the prefix
                return "<install>/" if prefix not in roots else ""
            if prefix in listed:
                return prefix
            return "." if prefix in roots and prefix != install else "<install>"
        return replace

    steps = [(re.compile(re.escape(prefix) + r"(/|(?![\w.-]))"), replacement(prefix)) for prefix in prefixes]

    def scrub(text: str) -> str:
        for pattern, replace in steps:
            text = pattern.sub(replace, text)
        return _PROCESS.sub("/proc/<pid>", text)

    return scrub


_PROCESS = re.compile(r"/proc/\d+")  # /proc/self resolves to the server's process id
