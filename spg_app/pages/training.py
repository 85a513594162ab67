"""Page 4, *Training*: watch SPG learn. The run's training replay (``spg_core.replay``): the stage
strip of one of its fixed validation images at any recorded moment of training (a slider, and
play), the loss terms per epoch, and each seed mask's precision and coverage over the epochs."""
from __future__ import annotations

import time
import warnings

import numpy as np
import streamlit as st
from streamlit.errors import StreamlitAPIException
from PIL import Image

from spg_app.figures import loss_figure, map_curves_figure, seed_quality_figure
from spg_app.loaders import load_run_replay, replay_map_curves
from spg_app.pictures import STRIP_SIDE, encode_picture, strip_pictures
from spg_app.runs import run_stamp
from spg_app.state import Context
from spg_app.thresholds import threshold_view
from spg_app.text import message, plain
from spg_core.data.transforms import mask_box
from spg_core.guidance import get_preset
from spg_core.localize import StageMaps
from spg_core.replay import STAGE_NAMES, STAT_NAMES, Replay
from spg_core.train import collapse_text

PLAY_SECONDS = 0.5  # pause between two records while playing
PLAYING = "replay_playing"  # session state: Play is on
NEXT_RECORD = "replay_next"  # session state: the record the next playing step shows


def record_label(replay: Replay, record: int) -> str:
    epoch = float(replay.epochs[record])
    moment = "before training" if epoch == 0 else (f"end of epoch {epoch:g}" if epoch == int(epoch)
                                                   else f"epoch {epoch:g} (inside)")
    return f"{moment} · step {int(replay.steps[record])}"


def replay_stage_maps(replay: Replay, record: int, image: int, class_names) -> StageMaps:
    """The record's maps of one image as the StageMaps every strip is drawn from."""
    picture = Image.fromarray(replay.images[image])
    label = int(replay.labels[image])
    probabilities = np.zeros(max(len(class_names), label + 1), np.float32)
    probabilities[label] = 1.0  # the replay keeps maps, not predictions: the GT class's map is shown
    return StageMaps(picture, probabilities, label, list(class_names), replay.stage_maps(record, image))


def draw_strip(slot, ctx: Context, replay: Replay, record: int, image: int, preset) -> None:
    maps = replay_stage_maps(replay, record, image, ctx.model.localizer.class_names)
    gt = mask_box(replay.objects[image])
    view = threshold_view(maps, preset, ctx.tau, object_region=replay.objects[image], gt_boxes=gt)
    with slot.container():
        st.markdown(f"**{record_label(replay, record)}** · box IoU {view.iou:.2f}" if view.iou is not None
                    else f"**{record_label(replay, record)}**")
        tiles = strip_pictures(maps, view, ctx.alpha, gt)
        for row in range(0, len(tiles), 5):
            columns = st.columns(5)
            for column, (name, title, picture) in zip(columns, tiles[row:row + 5]):
                data, fmt = encode_picture(picture, STRIP_SIDE)
                column.image(data, caption=title, alt=title, output_format=fmt, width="stretch")
                report = view.report.get(name)
                if report is not None and not np.isnan(report.get("foreground_precision", np.nan)):
                    column.caption(f"fg {100 * report['foreground']:.0f}% of the image · "
                                   f"{100 * report['foreground_precision']:.0f}% on the object")


def page(ctx: Context) -> None:
    st.title("Training")
    model = ctx.model
    if model is not None and model.is_maps:
        st.info(plain(f"{model.label} is a folder of maps, not a trained run: there is no training to replay."))
        return
    if model is None or model.folder is None or not (model.folder / "checkpoint.pt").is_file():
        st.info("Pick a trained run in the sidebar: this page replays how it learned.")
        return
    history = model.info.get("history") or []
    collapse = next((h["collapse"] for h in history if isinstance(h.get("collapse"), dict)), None)
    if collapse is not None:  # spg_core.train.CollapseWatch found one while this run trained
        st.warning(collapse_text(collapse))
    try:
        replay = load_run_replay(str(model.folder), run_stamp(model.folder))
    except ValueError as error:
        st.error(message(error))
        return
    if replay is None or len(replay) == 0:
        st.info(f"{plain(model.label)} was trained without a replay. Train with `--replay-images 16` (the default) "
                "to record the stage maps of 16 validation images every epoch.")
        return
    try:
        preset = replay.seed_preset()
    except ValueError as error:  # an older replay naming a modified preset: the run's configured one instead
        preset = get_preset(model.config.preset)
        st.caption(f":orange[{plain(error)}; its seeds are drawn here at the run's configured preset *{preset.name}*.]")
    st.caption(f"{len(replay.image_ids)} fixed validation images, {len(replay)} records. Seeds at the run's own "
               f"thresholds (preset *{preset.name}*), the map of the ground-truth class, box at τ = {ctx.tau:.2f}.")
    replay_view(ctx, model, replay, preset)


def toggle_play(last: int) -> None:
    """▶ Play / ⏸ Pause: playing starts over from the first record when the last one is shown."""
    state = st.session_state
    state[PLAYING] = not state.get(PLAYING, False)
    if state[PLAYING] and state.get("replay_record", last) >= last:
        state[NEXT_RECORD] = 0


@st.fragment
def replay_view(ctx: Context, model, replay: Replay, preset) -> None:
    """The moment slider, Play, the strip and the charts' marker: one fragment, so that playing
    reruns it record by record and every part shows the same moment."""
    state = st.session_state
    names = model.localizer.class_names
    last = len(replay) - 1
    columns = st.columns([2, 3, 1], vertical_alignment="bottom")
    image = columns[0].selectbox(
        "Image", range(len(replay.image_ids)), key="replay_image",
        format_func=lambda k: f"#{k} · {replay.image_ids[k]} · {names[int(replay.labels[k])]}"
        if int(replay.labels[k]) < len(names) else f"#{k} · {replay.image_ids[k]}")
    if NEXT_RECORD in state:  # set by the last playing step, before the slider is drawn
        state["replay_record"] = state.pop(NEXT_RECORD)
    state.setdefault("replay_record", last)
    if state["replay_record"] > last:
        state["replay_record"] = last
    record = columns[1].select_slider("Moment of training", options=list(range(len(replay))), key="replay_record",
                                      format_func=lambda r: f"{float(replay.epochs[r]):g}")
    playing = bool(state.get(PLAYING))
    columns[2].button("⏸ Pause" if playing else "▶ Play", key="replay_play", width="stretch",
                      on_click=toggle_play, args=(last,))
    draw_strip(st.empty(), ctx, replay, record, image, preset)
    left, right = st.columns(2)
    history = model.info.get("history") or []
    if history:
        left.plotly_chart(loss_figure(history), key="replay_losses")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a stage the variant lacks is all NaN
        mean_stats = np.nanmean(replay.stats, axis=1)  # over the images
    right.plotly_chart(seed_quality_figure(replay.epochs, mean_stats, STAGE_NAMES, STAT_NAMES,
                                           current=float(replay.epochs[record])), key="replay_seeds")
    map_curves(model, replay, record)
    if playing:
        if record >= last:
            state[PLAYING] = False
        else:
            time.sleep(PLAY_SECONDS)
            state[NEXT_RECORD] = record + 1
        try:
            st.rerun(scope="fragment")
        except StreamlitAPIException:  # drawn by a full run of the app (the click's): rerun it all
            st.rerun()


def map_curves(model, replay: Replay, record: int) -> None:
    if st.toggle("Every map over training: the images it boxes, object against background", key="replay_curves",
                 help="When the guidance grew, and whether it later turned inside out (background above "
                      "object). Boxes every recorded map at every τ: a few seconds, once per run."):
        boxed, means = replay_map_curves(str(model.folder), run_stamp(model.folder))
        st.plotly_chart(map_curves_figure(replay.epochs, boxed, means, current=float(replay.epochs[record])),
                        key="replay_map_curves")
