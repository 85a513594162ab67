"""Typed paths are accepted only under the configured roots: no way out through .. or links."""
import os

import pytest

from spg_app.paths import ROOTS_VARIABLE, PathRefused, allowed_path, allowed_roots
from spg_core.runs import SHIPPED_DIR


@pytest.fixture
def root(tmp_path, monkeypatch):
    allowed = tmp_path / "allowed"
    (allowed / "runs" / "a").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    monkeypatch.setenv(ROOTS_VARIABLE, str(allowed))
    monkeypatch.chdir(allowed)
    return allowed


def test_paths_inside_a_root_are_accepted_and_resolved(root):
    assert allowed_path(str(root / "runs" / "a")) == (root / "runs" / "a").resolve()
    assert allowed_path("runs/a") == (root / "runs" / "a").resolve()  # relative to the app's folder
    assert allowed_path(str(root / "runs" / "a" / "..")) == (root / "runs").resolve()
    assert allowed_path(str(SHIPPED_DIR / "synthetic-spg")) == (SHIPPED_DIR / "synthetic-spg").resolve()


def test_dot_dot_and_links_cannot_leave_the_roots(root):
    with pytest.raises(PathRefused, match=ROOTS_VARIABLE):
        allowed_path(str(root / ".." / "secret"))
    with pytest.raises(PathRefused):
        allowed_path("../secret")
    with pytest.raises(PathRefused):
        allowed_path("/etc")
    (root / "link").symlink_to(root.parent / "secret")
    with pytest.raises(PathRefused, match="secret"):
        allowed_path(str(root / "link"))


def test_the_roots_come_from_the_environment_or_default_to_the_working_folder(root, monkeypatch):
    second = root.parent / "secret"
    monkeypatch.setenv(ROOTS_VARIABLE, os.pathsep.join([str(root), str(second)]))
    assert allowed_path(str(second)) == second.resolve()
    monkeypatch.delenv(ROOTS_VARIABLE)
    assert allowed_roots()[0] == root.resolve()  # the app's folder
    with pytest.raises(PathRefused):
        allowed_path(str(second))


def test_the_sidebar_refuses_a_run_folder_outside_the_roots(root, tmp_path):
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    from app_runs import write_tiny_run
    from test_app import APP, TIMEOUT

    outside = write_tiny_run(tmp_path / "secret" / "run", "spg")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["model_choice"] = "__run_dir__"
    at.session_state["run_dir"] = str(outside)
    at.run()
    assert not at.exception
    errors = " ".join(e.value for e in at.sidebar.error)
    assert "outside the folders this app may read" in errors and ROOTS_VARIABLE in errors
    inside = write_tiny_run(root / "runs" / "tiny", "spg")
    at.session_state["run_dir"] = str(inside)
    at.run()
    assert not at.exception and not at.sidebar.error
