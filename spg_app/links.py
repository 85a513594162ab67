"""Deep links: the app's view in its URL, so one pasted link opens the same view for everyone.

``http://host:8501/explore?run=synthetic-spg&image=115&preset=teaching&mask_a=0.05-0.75&tau=0.61``
The page is the URL's path (``/explore``, ``/dataset``, ``/triage``, ``/training``); the query holds

* ``run`` — a shipped run's name, ``imagenet``, or a run folder inside ``SPG_APP_ROOTS``;
* ``image`` — the dataset image's index (explore page);
* ``preset`` — a name of ``guidance.PRESETS``; ``mask_a`` / ``mask_b2`` / ``mask_fuse`` —
  that stage's ``δ_l-δ_h`` where it differs from the preset;
* ``tau`` — the box threshold.

A link is read once, when a session starts (:func:`read_link`); from then on the URL follows the
view (:func:`write_url`). A bad value is said in one line and left out; the rest still applies.
"""
from __future__ import annotations

import math

import streamlit as st

from spg_app.paths import allowed_path
from spg_app.state import IMAGENET, MAPS_FOLDER, OTHER_RUN, preset_thresholds, view
from spg_app.text import message
from spg_core.guidance import PRESETS, STAGE_NAMES
from spg_core.runs import shipped_runs

READ = "link_read"  # session state: the link of this session was read
ERRORS = "link_errors"  # session state: one line per bad value, shown once
IMAGENET_NAME = "imagenet"


def parse_pair(text: str) -> tuple[float, float]:
    """``"0.05-0.70"`` → (0.05, 0.7), checked as Eq. 1 needs (0 ≤ δ_l < δ_h ≤ 1)."""
    parts = str(text).split("-")
    if len(parts) != 2:
        raise ValueError("give δ_l-δ_h, e.g. 0.05-0.70")
    low, high = (float(part) for part in parts)
    if not (0.0 <= low < high <= 1.0):
        raise ValueError("need 0 ≤ δ_l < δ_h ≤ 1, e.g. 0.05-0.70")
    return round(low, 4), round(high, 4)


def format_pair(pair) -> str:
    return f"{pair[0]:.2f}-{pair[1]:.2f}"


def parse_tau(text: str) -> float:
    tau = float(text)
    if not (math.isfinite(tau) and 0.0 <= tau <= 0.99):
        raise ValueError("need 0 ≤ τ ≤ 0.99, e.g. 0.2")
    return round(tau, 4)


def parse_image(text: str) -> int:
    index = int(str(text))
    if index < 0:
        raise ValueError("need an image index ≥ 0, e.g. 0")
    return index


def apply_run(text: str, state) -> None:
    """Point the sidebar's model choice at a shipped run, the ImageNet model or a run folder."""
    if text in shipped_runs():
        state["model_choice"] = text
    elif text == IMAGENET_NAME:
        state["model_choice"] = IMAGENET
    else:
        shipped = ", ".join(shipped_runs())
        try:
            folder = allowed_path(text)
        except ValueError as error:
            raise ValueError(f"not a shipped run ({shipped}) and {error}") from None
        if not folder.exists():
            raise ValueError(f"not a shipped run ({shipped}) nor a run folder ({folder} does not exist)")
        state["model_choice"], state["run_dir"] = OTHER_RUN, text


def read_link() -> list[str]:
    """Apply the session's link once, when the session starts. Returns the bad values, one line
    each (also kept for :func:`show_errors`)."""
    state = st.session_state
    if state.get(READ):
        return []
    state[READ] = True
    params = dict(st.query_params)
    errors: list[str] = []
    current = view()

    def attempt(name: str, action) -> bool:
        if name not in params:
            return False
        try:
            action(params[name])
            return True
        except (TypeError, ValueError) as error:
            errors.append(f"Link: {name}={params[name]!r} was ignored: {error}.")
            return False

    attempt("run", lambda text: apply_run(text, state))
    pinned: dict = {}

    def set_preset(text):
        if text not in PRESETS:
            raise ValueError(f"no preset of that name; choose one of {', '.join(PRESETS)}")
        pinned["preset"] = text

    def set_image(text):
        current.image = parse_image(text)
        state["image_source"], state["browse_mode"] = "dataset", "index"

    attempt("preset", set_preset)
    for stage in STAGE_NAMES:
        attempt(stage, lambda text, stage=stage: pinned.setdefault("thresholds", {}).__setitem__(stage, parse_pair(text)))
    attempt("tau", lambda text: pinned.__setitem__("tau", parse_tau(text)))
    attempt("image", set_image)
    current.pinned = pinned  # applied over the first model's own values (View.adopt)
    known = {"run", "preset", "tau", "image", *STAGE_NAMES}
    errors += [f"Link: {name}= is not a setting of this app and was ignored (known: {', '.join(sorted(known))})."
               for name in params if name not in known]
    state[ERRORS] = errors
    return errors


def link_params() -> dict[str, str]:
    """The query that reopens the current view."""
    state = st.session_state
    current = view()
    params: dict[str, str] = {}
    choice = state.get("model_choice")
    if choice == IMAGENET:
        params["run"] = IMAGENET_NAME
    elif choice == OTHER_RUN and str(state.get("run_dir", "")).strip():
        params["run"] = str(state["run_dir"]).strip()
    elif choice not in (None, MAPS_FOLDER, OTHER_RUN):
        params["run"] = str(choice)
    if current.image is not None and state.get("image_source", "dataset") == "dataset":
        params["image"] = str(current.image)
    params["preset"] = current.preset
    defaults = preset_thresholds(current.preset)
    for stage in STAGE_NAMES:
        pair = tuple(current.thresholds[stage])
        if pair != defaults[stage]:
            params[stage] = format_pair(pair)
    params["tau"] = f"{current.tau:.2f}"
    return params


def write_url() -> None:
    """Put the current view into the URL (only the values that changed are sent)."""
    wanted = link_params()
    if dict(st.query_params) != wanted:
        st.query_params.from_dict(wanted)


def show_errors() -> None:
    """The link's bad values, one warning line each, on the first page drawn."""
    for line in st.session_state.pop(ERRORS, []):
        st.warning(message(line), icon=":material/link_off:")
