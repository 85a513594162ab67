"""Controls and notices shared by the pages."""
from __future__ import annotations

import re

import numpy as np
import streamlit as st

from spg_app.datasets import DEFAULT_COUNT
from spg_app.state import Context
from spg_app.text import plain


def count_slider(label: str, total: int, key: str, default: int = DEFAULT_COUNT, help: str | None = None) -> int:
    """How many images of the dataset to use (its first N); small by default, cached per N."""
    if total <= 1:
        st.caption(f"{label}: {total} (the dataset's only image)")
        return total
    st.session_state[key] = min(st.session_state.get(key, default), total)
    return int(st.slider(label, 1, total, key=key, help=help))


SCROLL_TO = "scroll_to"  # session state: the section the tour's "Show me" brings into view


def scroll_target(name: str) -> None:
    """Where a section starts: when the tour asked for ``name``, bring it into view once."""
    if st.session_state.get(SCROLL_TO) != name:
        return
    del st.session_state[SCROLL_TO]
    anchor = f"spg-scroll-{name}"
    # Retried briefly: the section's elements may still be arriving when the script runs.
    st.html(f'<div id="{anchor}"></div><script>(function go(n){{const e=document.getElementById("{anchor}");'
            f'if(e){{e.scrollIntoView({{block:"start"}});}}if(n>0)setTimeout(()=>go(n-1),250);}})(8);</script>',
            unsafe_allow_javascript=True)


def percent(value) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{100 * value:.1f}%"


def need(ctx: Context, dataset: bool = True, gt: bool = False) -> bool:
    if ctx.model is None:
        st.info("Pick a trained run in the sidebar.")
        return False
    if dataset and ctx.dataset is None:
        if ctx.model.uploads_only:
            st.info(f"{plain(ctx.model.label)} has no dataset here: it is for uploaded photos on the Explore page. "
                    "Pick a trained run in the sidebar for this page.")
            return False
        st.info("Pick a dataset in the sidebar.")
        return False
    if gt and not ctx.gt_usable:
        st.warning("This page scores ground-truth class maps: the dataset's classes must be the model's.")
        return False
    return True


def numbers_table(title: str, numbers: dict[str, str]) -> str:
    """A two-column Markdown table — ``| seeds | title |``, then a row per number — for
    ``st.markdown``: a fraction of the server time of an ``st.table`` (no DataFrame, no Arrow),
    which counts on a slider move. :func:`read_numbers_table` reads it back."""
    lines = [f"| seeds | {title} |", "|---|---|", *(f"| {name} | {value} |" for name, value in numbers.items())]
    return "\n".join(lines)


def classes_table(rows: list[tuple[str, float]]) -> str:
    """The top-k classes as a Markdown table — ``| class | probability |`` — for ``st.markdown``
    (an ``st.table`` costs a DataFrame and its Arrow conversion on every image change, and the
    browser's table code on a first visit). :func:`read_classes_table` reads it back."""
    lines = ["| class | probability |", "|---|---|", *(f"| {plain(name)} | {p:.1%} |" for name, p in rows)]
    return "\n".join(lines)


def read_classes_table(markdown: str) -> list[tuple[str, str]] | None:
    """(class, probability text) rows of a :func:`classes_table`, or None for any other Markdown."""
    lines = markdown.strip().splitlines()
    if len(lines) < 2 or lines[0] != "| class | probability |" or lines[1] != "|---|---|":
        return None
    rows = []
    for line in lines[2:]:
        cells = re.split(r"(?<!\\)\|", line.strip()[1:-1])
        if len(cells) == 2:
            rows.append((re.sub(r"\\(.)", r"\1", cells[0].strip()), cells[1].strip()))
    return rows


def read_numbers_table(markdown: str) -> tuple[str, dict[str, str]] | None:
    """(title, numbers) of a :func:`numbers_table`, or None for any other Markdown."""
    lines = markdown.strip().splitlines()
    if len(lines) < 2 or not lines[0].startswith("| seeds | ") or lines[1] != "|---|---|":
        return None
    title = lines[0][len("| seeds | "):].rstrip(" |")
    cells = (line.strip("|").split("|") for line in lines[2:])
    return title, {name.strip(): value.strip() for name, value in (c for c in cells if len(c) == 2)}
