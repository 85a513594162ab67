"""SPG Explorer, the Streamlit app over ``spg_core`` (started by ``app.py``: ``make app``).

``pages/`` holds the four pages (explore, dataset, triage, training); ``sidebar`` draws the model, data and display choices into a
:class:`spg_app.state.Context` that each page receives; ``loaders`` holds the cached model,
dataset and picture resources; ``figures`` the plotly figures (pure functions of plain data).
The other modules are the app's plumbing, one concept each: ``runs``, ``datasets``, ``uploads``,
``thresholds``, ``pictures``, ``downloads``, ``stages``, ``links`` (deep links). Nothing here computes a map, a seed, a
box or a metric: that is ``spg_core``'s, which never imports this package.
"""
