"""Which image the explore page shows: an uploaded photo, or a dataset image by index, by
class or worst IoU first."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from spg_app.analyses import FAILURE_NOTES, evaluation
from spg_app.datasets import indices_by_class, positions_by_image_id
from spg_app.loaders import dataset_image_key, dataset_sample, decode_upload
from spg_app.state import Context, Picked, bind, view
from spg_app.uploads import MAX_UPLOAD_BYTES, UploadError
from spg_app.widgets import count_slider
from spg_app.text import message


def remember_upload() -> None:
    uploaded = st.session_state.get("upload")
    st.session_state["last_upload"] = (
        None if uploaded is None else (uploaded.file_id, uploaded.name, uploaded.getvalue()))


def pick_upload() -> Picked | None:
    # No `type=` filter: Streamlit would raise on other files; read_upload names the problem instead.
    st.file_uploader(f"Upload a photo (PNG or JPEG, up to {MAX_UPLOAD_BYTES // 2**20} MB)",
                     key="upload", on_change=remember_upload)
    uploaded = st.session_state.get("upload")
    stored = st.session_state.get("last_upload")
    if uploaded is not None and (stored is None or stored[0] != uploaded.file_id):
        stored = (uploaded.file_id, uploaded.name, uploaded.getvalue())
        st.session_state["last_upload"] = stored
    if stored is None:
        st.info("Upload a photo to see every stage on it. Photos have no ground truth: IoU and seed precision "
                "need a dataset image.")
        return None
    file_id, name, data = stored
    try:
        image, scale = decode_upload(file_id, name, data)
    except UploadError as error:
        st.error(message(error))
        return None
    note = f" (downscaled ×{scale:.2f} from the file)" if scale < 1 else ""
    return Picked(f"upload:{file_id}", image, f"{name} · {image.width}×{image.height}{note}", scale=scale,
                  image_id=Path(name).stem)


def worst_ranking(ctx: Context) -> list[tuple[int, float, str]] | None:
    model = ctx.model
    total = len(ctx.dataset)
    columns = st.columns([2, 1], vertical_alignment="bottom")
    with columns[0]:
        n = count_slider("Images to rank", total, "worst_n",
                         help="Per-image IoU of the ground-truth class map's box at τ (paper protocol).")
    result = evaluation(ctx, model, n, "paper", compute=False)
    if result is None:
        if columns[1].button("Rank by IoU", key="rank_button", type="primary"):
            result = evaluation(ctx, model, n, "paper", compute=True)
    if result is not None:
        positions = positions_by_image_id(ctx.dataset)
        order = sorted(((positions[r["image_id"]], r["iou"], r["failure"]) for r in result["rows"]),
                       key=lambda item: item[1])
        st.session_state["worst_ranking"] = {"key": (model.key, ctx.data_key), "tau": result["tau"], "order": order}
    saved = st.session_state.get("worst_ranking")
    if not saved or saved["key"] != (model.key, ctx.data_key):
        st.caption("Ranking needs one pass of the model over the images (cached afterwards).")
        return None
    if abs(saved["tau"] - ctx.tau) > 1e-9:
        st.caption(f"Ranked at τ = {saved['tau']:.2f}; press *Rank by IoU* to rank at τ = {ctx.tau:.2f}.")
    return saved["order"]


def image_index_input(total: int) -> int:
    """The image index box, drawn from and written to the session's view (0 when out of range)."""
    current = view()
    if current.image is None or not 0 <= current.image < total:
        current.image = 0
    bind("explore_index", current.image)
    st.number_input(f"Image index (0–{total - 1})", 0, total - 1, key="explore_index", on_change=image_changed)
    return current.image


def image_changed() -> None:
    view().image = int(st.session_state["explore_index"])


def pick_index(ctx: Context, mode: str) -> int | None:
    dataset = ctx.dataset
    total = len(dataset)
    if mode == "index":
        return image_index_input(total)
    if mode == "class":
        groups = indices_by_class(dataset)
        classes = sorted(groups)
        if st.session_state.get("explore_class") not in classes:
            st.session_state["explore_class"] = classes[0]
        columns = st.columns(2)
        chosen = columns[0].selectbox("Class", classes, key="explore_class",
                                      format_func=lambda c: f"{dataset.class_names[c]} ({len(groups[c])} images)")
        members = groups[chosen]
        if st.session_state.get("explore_class_rank", 0) >= len(members):
            st.session_state["explore_class_rank"] = 0
        rank = int(columns[1].number_input(f"Image of this class (0–{len(members) - 1})", 0, len(members) - 1,
                                           key="explore_class_rank"))
        return members[rank]
    order = worst_ranking(ctx)
    if not order:
        return None
    if st.session_state.get("worst_rank", 0) >= len(order):
        st.session_state["worst_rank"] = 0
    rank = int(st.number_input(f"Rank (0 = worst IoU, {len(order) - 1} = best)", 0, len(order) - 1,
                               key="worst_rank"))
    index, iou, failure = order[rank]
    st.caption(f"Evaluator: IoU {iou:.3f}, failure type *{failure}* — {FAILURE_NOTES.get(failure, '')}.")
    return index


def pick_dataset_image(ctx: Context, mode_slot, input_slot) -> Picked | None:
    dataset = ctx.dataset
    mode = mode_slot.selectbox("Browse", ["index", "class", "worst"], key="browse_mode",
                               format_func={"index": "by index", "class": "by class",
                                            "worst": "worst IoU first"}.get)
    with input_slot:
        index = pick_index(ctx, mode)
    if index is None:
        return None
    sample = dataset_sample(ctx.data_key, index, dataset)
    if sample is None:
        st.error(f"Image {index} of the dataset cannot be decoded (see the server log); pick another one.")
        return None
    name = dataset.class_names[sample.label] if 0 <= sample.label < len(dataset.class_names) else str(sample.label)
    title = f"#{index} · {sample.image_id} · ground truth: {name} · {sample.size[0]}×{sample.size[1]}"
    return Picked(dataset_image_key(ctx.data_key, index), sample.image, title, int(sample.label),
                  np.asarray(sample.boxes), sample.mask, 1.0, str(sample.image_id))
