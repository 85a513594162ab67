"""The course notebooks: stored without outputs, and each runs top to bottom headless.

Every notebook executes in a temporary copy (the committed file is never touched), in a kernel
of this interpreter, with the checkout on PYTHONPATH, no network and nbclient's timeout of 300 s
per cell. The notebooks use the shipped runs and the generated teaching benchmark only.
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
COURSE = (
    "01_attention_map.ipynb",
    "02_seeds_mask_a.ipynb",
    "03_b2.ipynb",
    "04_b1.ipynb",
    "05_fused_guidance.ipynb",
    "06_training.ipynb",
    "07_evaluation.ipynb",
)
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def test_course_is_complete():
    assert [p.name for p in NOTEBOOKS] == list(COURSE), (
        f"notebooks/ should hold exactly {COURSE}; found {[p.name for p in NOTEBOOKS]}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    dirty = [index for index, cell in enumerate(notebook.cells)
             if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)]
    assert not dirty, (f"{path.name}: cells {dirty} hold outputs; clear them before committing "
                       "(JupyterLab: Edit > Clear Outputs of All Cells, then save; or "
                       f".venv/bin/jupyter nbconvert --clear-output --inplace {path.relative_to(ROOT)})")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_ends_with_exercises(path):
    notebook = nbformat.read(path, as_version=4)
    last = notebook.cells[-1]
    assert last.cell_type == "markdown" and "## Exercises" in last.source, (
        f"{path.name}: the last cell should be the '## Exercises' section")


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path, monkeypatch):
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    notebook = nbformat.read(copy, as_version=4)
    # Find the "python3" kernel spec of this interpreter's environment first: jupyter_client then
    # starts it with sys.executable, so the notebooks run against the same packages as the tests.
    monkeypatch.setenv("JUPYTER_PATH", str(Path(sys.prefix) / "share" / "jupyter"))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["TMPDIR"] = str(tmp_path)  # notebook 6's training run folder lands here, pruned by pytest
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env=env)  # raises CellExecutionError naming the failing cell
    nbformat.write(notebook, copy)  # the executed copy stays in tmp_path for inspection
