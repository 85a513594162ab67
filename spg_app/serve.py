"""Start the app with the toolkit already loaded: ``python -m spg_app.serve [streamlit options]``
(what ``make app`` runs).

``streamlit run app.py`` imports torch, ``spg_core`` and the pages inside the first visitor's
script run, so the first person to open the page waits several seconds for imports that every
later visitor finds done. This launcher imports them in the server process before the server
starts (and freezes what they made out of the garbage collector's walks), then hands over to
``streamlit run app.py`` with the options given: the first visit costs what every other one does. Options are Streamlit's, e.g. ``--server.address 0.0.0.0
--server.port 8501``.
"""
from __future__ import annotations

import gc
import importlib
import logging
import sys
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app.py"
# What app.py's first run imports (torch and the library come with them).
PRELOAD = ("spg_app.sidebar", "spg_app.pages.explore", "spg_app.pages.dataset", "spg_app.pages.training",
           "spg_app.pages.triage", "spg_app.state")


def preload() -> None:
    # Before the server exists, each st.cache_data decorator checks its options against a stand-in
    # storage and logs "No runtime found" once; the caches themselves are made by the server's runtime.
    from streamlit.runtime.caching import cache_data_api

    quiet = logging.getLogger(cache_data_api.__name__)
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        for name in PRELOAD:
            importlib.import_module(name)
    finally:
        quiet.setLevel(level)
    # The imports leave ~0.3 M long-lived objects: move them out of the collector's reach, so a
    # full collection while students work does not walk them (0.8 s → 0 ms measured here).
    gc.freeze()


def warm_default_run() -> None:
    """Load the run the sidebar opens on and its test split into the process-wide resource cache
    (``st.cache_resource`` is one store per process, with or without a session), so the first
    visitor does not wait for them either, and compute that run's outputs on the split ahead
    (``loaders.fill_outputs_ahead``, ``SPG_APP_AHEAD`` images: a class changing images there runs
    no forward)."""
    from spg_app.loaders import ahead_count, fill_outputs_ahead, load_dataset, open_model
    from spg_app.sidebar import DEFAULT_RUN
    from spg_core.data.settings import DataSettings
    from spg_core.runs import shipped_runs

    if DEFAULT_RUN in shipped_runs():
        model = open_model(DEFAULT_RUN)
        data_key = DataSettings.from_flags(model.config).key("test")
        fill_outputs_ahead(model, data_key, load_dataset(data_key), limit=ahead_count())


def main(argv: list[str]) -> None:
    if not APP.is_file():
        raise SystemExit(f"spg_app.serve: no app.py at {APP}; run it from a checkout of the project "
                         "(or use `streamlit run path/to/app.py`).")
    preload()
    from spg_app.loaders import ahead_count, app_threads

    try:
        app_threads()
        ahead_count()
    except ValueError as error:
        raise SystemExit(f"spg_app.serve: {error}") from None
    warm_default_run()
    gc.freeze()  # again: the default run's objects are long-lived too
    from streamlit.web import cli

    sys.argv = ["streamlit", "run", str(APP), *argv]
    cli.main()


if __name__ == "__main__":
    main(sys.argv[1:])
