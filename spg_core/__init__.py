"""SPG: Self-produced Guidance for weakly-supervised object localisation (Zhang et al., ECCV 2018).

The library behind the command line (`python -m spg_core`), the Streamlit app and the notebooks.
"""

__version__ = "0.1.0"

_LAZY = {"build_model": "spg_core.models", "list_backbones": "spg_core.models", "VARIANTS": "spg_core.models",
         "Localizer": "spg_core.localize", "load_run": "spg_core.runs", "TrainConfig": "spg_core.config",
         "train": "spg_core.train"}


def __getattr__(name):
    # Lazy so that `import spg_core.guidance` stays light (no model code) for the app's hot path.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'spg_core' has no attribute {name!r}")


__all__ = sorted(_LAZY)
