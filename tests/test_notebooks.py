"""The course notebooks: stored without outputs, and each runs top to bottom headless.

Every notebook executes in a temporary copy (the committed file is never touched), in a kernel
of this interpreter, with the checkout on PYTHONPATH, no network and nbclient's timeout of 300 s
per cell. The notebooks use the shipped runs and the generated teaching benchmark only.

Each figure output holds plotly's JSON and a static PNG of the figure (``viz.use_static_copies``):
viewers without plotly's JavaScript (a code host, nbconvert's HTML) show the PNG. Executed copies
of the notebooks, outputs included, are kept in ``notebooks/executed/`` for reading on a code
host; a fast test checks that they hold the course notebooks' cells and a PNG of every figure.
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
EXECUTED_DIR = NOTEBOOK_DIR / "executed"  # the same notebooks with their outputs
PLOTLY_JSON = "application/vnd.plotly.v1+json"
REGENERATE = (".venv/bin/jupyter nbconvert --to notebook --execute --output-dir notebooks/executed "
              "notebooks/0*.ipynb")


def figure_outputs(cell) -> list:
    """A cell's outputs that show a figure: plotly's JSON or a PNG."""
    return [output for output in cell.get("outputs", ())
            if output.get("output_type") in ("display_data", "execute_result")
            and (PLOTLY_JSON in output.get("data", {}) or "image/png" in output.get("data", {}))]


def missing_pictures(notebook) -> list[str]:
    """What an executed notebook lacks for a reader without plotly's JavaScript: each figure output
    without its static PNG, each cell that shows a figure (``.show()``) with no PNG at all (a
    figure shown under an ``if`` may be skipped), and error outputs."""
    problems = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        figures = figure_outputs(cell)
        problems += [f"cell {index}: a figure with no image/png (only {sorted(o['data'])})" for o in figures
                     if "image/png" not in o["data"]]
        code = [line.split("#", 1)[0] for line in cell.source.splitlines()]  # comments left out
        conditional = any(line.lstrip().startswith(("if ", "else", "for ")) for line in code)
        if any(".show()" in line for line in code) and not figures and not conditional:
            problems.append(f"cell {index}: calls .show() but holds no figure output")
        problems += [f"cell {index}: {o.get('ename')}: {o.get('evalue')}" for o in cell.get("outputs", ())
                     if o.get("output_type") == "error"]
    return problems


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
    assert not missing_pictures(notebook), missing_pictures(notebook)  # every figure with its PNG


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_executed_copy_is_current_and_pictures_every_figure(path):
    """``notebooks/executed/`` holds each course notebook executed, for a code host's notebook view
    (which does not run plotly's JavaScript): the same cells as the course notebook, every figure
    with its static PNG."""
    copy = EXECUTED_DIR / path.name
    assert copy.is_file(), f"no executed copy of {path.name}: {REGENERATE}"
    executed, course = nbformat.read(copy, as_version=4), nbformat.read(path, as_version=4)
    assert [(c.cell_type, c.source) for c in executed.cells] == [(c.cell_type, c.source) for c in course.cells], (
        f"{copy.relative_to(ROOT)} is not {path.name} executed (a cell changed since): {REGENERATE}")
    assert all(c.execution_count is not None for c in executed.cells if c.cell_type == "code"), "not executed"
    assert not missing_pictures(executed), missing_pictures(executed)
    assert any(figure_outputs(cell) for cell in executed.cells), f"{copy.name} shows no figure"


def test_missing_pictures_finds_a_figure_stored_as_plotly_json_only():
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("fig.show()")])
    notebook.cells[0].outputs = [nbformat.v4.new_output("display_data", data={PLOTLY_JSON: {"data": []}})]
    assert missing_pictures(notebook) == [f"cell 0: a figure with no image/png (only ['{PLOTLY_JSON}'])"]
    notebook.cells[0].outputs[0]["data"]["image/png"] = "iVBORw0KGgo="
    assert missing_pictures(notebook) == []
    notebook.cells[0].outputs = []
    assert missing_pictures(notebook) == ["cell 0: calls .show() but holds no figure output"]
