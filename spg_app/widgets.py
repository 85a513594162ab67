"""Controls and notices shared by the pages."""
from __future__ import annotations

import numpy as np
import streamlit as st

from spg_app.datasets import DEFAULT_COUNT
from spg_app.state import Context


def count_slider(label: str, total: int, key: str, default: int = DEFAULT_COUNT, help: str | None = None) -> int:
    """How many images of the dataset to use (its first N); small by default, cached per N."""
    if total <= 1:
        st.caption(f"{label}: {total} (the dataset's only image)")
        return total
    st.session_state[key] = min(st.session_state.get(key, default), total)
    return int(st.slider(label, 1, total, key=key, help=help))


def percent(value) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{100 * value:.1f}%"


def need(ctx: Context, dataset: bool = True, gt: bool = False) -> bool:
    if ctx.model is None:
        st.info("Pick a trained run in the sidebar.")
        return False
    if dataset and ctx.dataset is None:
        if ctx.model.uploads_only:
            st.info(f"{ctx.model.label} has no dataset here: it is for uploaded photos on the Explore page. "
                    "Pick a trained run in the sidebar for this page.")
            return False
        st.info("Pick a dataset in the sidebar.")
        return False
    if gt and not ctx.gt_usable:
        st.warning("This page scores ground-truth class maps: the dataset's classes must be the model's.")
        return False
    return True
