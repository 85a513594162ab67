"""User-supplied text shown in the app as plain text: class names, file names, image ids, typed
paths and the error messages that quote them. Streamlit renders Markdown in messages and
captions, so ``![](http://host/x.png)`` in a class name would make every viewer's browser fetch
that address; :func:`plain` escapes what Markdown acts on, :func:`message` also hides the paths
a reader of the app must not learn (:func:`spg_app.paths.public_text`)."""
from __future__ import annotations

import re

from spg_app.paths import public_text

_ALWAYS = re.compile(r"([\\`*\[\]<>|~$&])")  # links, images, code, emphasis, HTML, tables, LaTeX, entities
_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")  # `_` may emphasise only where a word does not hold it
_LINE_START = re.compile(r"^(\s*)([#>+=-]|\d+(?=[.)]))", re.MULTILINE)  # headings, quotes, lists, rules


def plain(text) -> str:
    """``text`` escaped so that Markdown shows it as written (no link, image, HTML or styling).

    Args:
        text: any value; shown as ``str(text)``.

    Returns:
        The Markdown source that renders as ``str(text)``.
    """
    escaped = _UNDERSCORE.sub(r"\\_", _ALWAYS.sub(r"\\\1", str(text)))
    return _LINE_START.sub(lambda m: m.group(1) + (m.group(2) + "\\" if m.group(2)[0].isdigit() else "\\" + m.group(2)),
                           escaped)


def message(error) -> str:
    """An error (or any text quoting user input) as the app shows it: paths relative to their
    root, the install folder and process ids hidden, then :func:`plain`.

    Args:
        error: an exception or a text.

    Returns:
        Markdown source that renders the message as plain text.
    """
    return plain(public_text(str(error)))
