"""SPG Explorer: a Streamlit view over spg_core (start it with `make app`).

Four pages (``spg_app/pages/``), each with its URL (the explore page at the root, ``/dataset``,
``/triage``, ``/training``) and the view in the query (deep links, :mod:`spg_app.links`):

* **Explore one image** — every stage of the paper's Fig. 2 for one image in the pipeline view,
  whose Eq. 1 thresholds and box threshold τ are applied in the browser while a thumb moves;
* **Dataset** — accuracy against τ for any number of runs and maps folders, with the trivial
  baselines, the IoU histogram, and a sweep of (δ_l, δ_h) showing which thresholds give clean seeds;
* **Failure triage** — the evaluated images worst IoU first, filtered by failure type and by
  whether Mask-A's fallback fired, each one a click away from the explore page;
* **Training** — the run's training replay: its stages on fixed validation images over the epochs.

The app adds layout, caching and interaction only. Maps come from ``Localizer.predict``, seeds
from ``GuidancePreset.seeds`` (``spg_app/pipeline_view/frontend/spg_compute.js`` in the browser,
kept bit for bit equal by a parity test), boxes from ``localize.localization_box``, numbers from
``guidance.seed_statistics`` / ``spg_core.evaluate`` / ``spg_core.sweeps``, pictures from
``spg_core.viz``. Model weights and datasets are cached with ``st.cache_resource``, per-image
maps with ``st.cache_data`` (``spg_app.loaders``): a release only re-thresholds cached maps.

Beyond the paper, the sidebar also offers the pretrained ImageNet EfficientNet-Lite0 (1000
classes, offline) for uploaded photos, and the explore page can grow SPG-B on one uploaded
photo (``spg_core.single_image.single_image_guidance``) and show how the guidance spread.

``streamlit run app.py`` puts this file's folder on ``sys.path``, so ``spg_app`` and
``spg_core`` import from the checkout without being installed.
"""
from __future__ import annotations

from functools import partial

import streamlit as st

st.set_page_config(page_title="SPG Explorer", page_icon=":material/image_search:", layout="wide")
# Maps are 12-28 px grids upsampled to the image: the browser enlarges pictures without
# smoothing, so a seed mask shows its real pixels (and the server never encodes big copies).
# Less padding above the page: the explore page's pipeline view fits a 1400×900 window.
st.html("<style>[data-testid='stImage'] img {image-rendering: pixelated;}"
        "[data-testid='stMainBlockContainer'] {padding-top: 3.75rem;}"
        "[data-testid='stMainBlockContainer'] h1 {font-size: 1.6rem; padding: 0;}</style>")

with st.spinner("Loading the toolkit (first start only)…"):
    from spg_app import links, sidebar
    from spg_app.pages import dataset, explore, training, triage
    from spg_app.state import PAGE_REQUEST, Context, keep_widget_state

# name: (page function, title, icon); the name is the page's URL path and the value of PAGE_REQUEST.
PAGES = {
    "explore": (explore.page, "Explore one image", ":material/image_search:"),
    "dataset": (dataset.page, "Dataset", ":material/monitoring:"),
    "triage": (triage.page, "Failure triage", ":material/troubleshoot:"),
    "training": (training.page, "Training", ":material/replay:"),
}


def main() -> None:
    keep_widget_state()
    links.read_link()  # once per session: a pasted link's run, image, thresholds and τ
    # Filled by the sidebar below (model, data, τ, opacity), then handed to the page that runs.
    context = Context()
    pages = {name: st.Page(partial(render, context), title=title, icon=icon, url_path=name, default=name == "explore")
             for name, (render, title, icon) in PAGES.items()}
    navigation = st.navigation(list(pages.values()))
    request = st.session_state.pop(PAGE_REQUEST, None)
    if request in pages:
        st.switch_page(pages[request])
    # The sidebar is shared by every page: it is drawn before the page runs.
    context.page = navigation.url_path
    sidebar.draw(context)
    links.show_errors()
    navigation.run()
    links.write_url()


main()
