"""Hostile and broken datasets, maps and run files on a class server (docs/refused.md): each case
builds its input in a temporary folder and asserts the defined outcome (a one-line refusal naming
the file and the fix, or the defined result) and that nothing on disk changed. Memory cases bound
the peak RSS of a subprocess; app cases go through the app (AppTest)."""
from __future__ import annotations

import functools
import gzip
import hashlib
import os
import re
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import spg_core
from spg_core.data import build_dataset
from test_hostile import memory_probe

ROOT = Path(__file__).resolve().parents[1]
MARKDOWN_IMAGE = "![](http://example.com/x.png)"


# ----------------------------------------------------------------------------- helpers
def snapshot(folder: Path) -> dict[str, tuple]:
    """Every entry under ``folder`` (links not followed): its kind, size and content digest."""
    entries = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            entries[str(path)] = ("link", os.readlink(path))
        elif path.is_file():
            entries[str(path)] = ("file", path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            entries[str(path)] = ("dir",)
    return entries


@pytest.fixture
def unchanged(tmp_path):
    """Asserts at the end of the test that nothing under tmp_path changed after ``unchanged()``."""
    taken = {}

    def take():
        taken["before"] = snapshot(tmp_path)

    yield take
    if "before" in taken:
        assert snapshot(tmp_path) == taken["before"], "files on disk changed"


def one_line(text: str) -> str:
    assert "\n" not in str(text), text
    return str(text)


def write_lines(path: Path, lines) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def write_wsol(root: Path, ids=("a.png", "b.png"), labels=None, names=("cat", "dog"), side: int = 16,
               sizes: bool = True) -> Path:
    """A wsolevaluation dataset: ``root/images/<id>`` PNGs, ``root/metadata/test/*.txt`` (one box
    each) and ``class_names.txt``. Returns ``root``."""
    labels = labels or [f"{image_id},{k % len(names)}" for k, image_id in enumerate(ids)]
    for image_id in ids:
        path = root / "images" / image_id
        if not (image_id.startswith("/") or ".." in image_id):
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (side, side), (120, 40, 200)).save(path, format="PNG")
    split = root / "metadata" / "test"
    write_lines(split / "image_ids.txt", ids)
    write_lines(split / "class_labels.txt", labels)
    if sizes:
        write_lines(split / "image_sizes.txt", [f"{i},{side},{side}" for i in ids])
    write_lines(split / "localization.txt", [f"{i},2,2,{side - 4},{side - 4}" for i in ids])
    write_lines(root / "metadata" / "class_names.txt", names)
    return root


def wsol(root: Path, need_images: bool = True):
    return build_dataset("wsol", "test", data_root=root, metadata_root=root / "metadata", need_images=need_images)


def write_maps(folder: Path, ids, side: int = 8) -> Path:
    generator = np.random.default_rng(0)
    for image_id in ids:
        path = folder / f"{image_id}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, generator.random((side, side)))
    return folder


def npy_header(shape, descr="<f8") -> bytes:
    """The bytes of a version 1.0 .npy header declaring ``shape`` of ``descr`` (no data after it)."""
    text = f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': {tuple(shape)!r}, }}"
    text += " " * (-(10 + len(text) + 1) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode("latin1")


def forged_maps() -> dict[str, bytes]:
    """Map files a loader must refuse from their header, by name."""
    structured = np.zeros((4, 4), dtype=[("a", "<f4"), ("b", "<i4")])
    objects = np.array([[{"x": 1}]], dtype=object)
    files = {"empty": b"", "zero_by_zero": _npy(np.zeros((0, 0))), "structured": _npy(structured),
             "claims_1e10": npy_header((100000, 100000)) + b"\0" * 64, "object": _npy(objects, pickle=True),
             "three_d": _npy(np.zeros((2, 3, 4))), "truncated": _npy(np.zeros((32, 32)))[:-100],
             "not_npy": b"P5\n4 4\n255\n" + bytes(16)}
    return files


def _npy(array, pickle: bool = False) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=pickle)
    return buffer.getvalue()


# ----------------------------------------------------------------------------- .npy maps (library)
@pytest.mark.parametrize("case", sorted(forged_maps()))
def test_a_forged_map_file_is_refused_from_its_header(tmp_path, unchanged, case):
    from spg_core.data.arrays import MapFileError, read_map

    path = tmp_path / f"{case}.npy"
    path.write_bytes(forged_maps()[case])
    unchanged()
    with pytest.raises(MapFileError) as error:
        read_map(path)
    text = one_line(error.value)
    assert str(path) in text and ("numpy.save" in text or "smaller size" in text), text


def test_a_good_map_reads_as_numpy_saved_it(tmp_path):
    from spg_core.data.arrays import read_map

    for array in (np.arange(12, dtype=np.float32).reshape(3, 4), np.asfortranarray(np.eye(5)),
                  np.ones((2, 2), ">f8"), np.zeros((3, 3), bool)):
        np.save(tmp_path / "m.npy", array)
        np.testing.assert_array_equal(read_map(tmp_path / "m.npy"), array)


def test_a_map_header_claiming_1e10_elements_costs_no_memory(tmp_path):
    path = tmp_path / "bomb.npy"
    path.write_bytes(npy_header((100000, 100000)) + bytes(1 << 20))  # 1 MB of data for an 80 GB claim
    result = memory_probe("from spg_core.data.arrays import read_map", "read_map(sys.argv[1])", "ValueError", path)
    assert str(path) in one_line(result["outcome"]) and "(100000, 100000)" in result["outcome"]
    assert result["grew_mb"] < 20, result


# ----------------------------------------------------------------------------- paths in annotations
@pytest.mark.parametrize("listed", ["/outside/secret.png", "../../outside/secret.png", "images/../../secret.png"])
def test_a_wsol_image_id_outside_the_dataset_is_refused(tmp_path, unchanged, listed):
    root = write_wsol(tmp_path / "data", ids=("a.png", listed))
    unchanged()
    with pytest.raises(ValueError) as error:
        wsol(root, need_images=False)
    text = one_line(error.value)
    assert f"image_ids.txt:2: image path {listed!r}" in text and "relative to" in text, text


def test_a_wsol_mask_path_outside_the_dataset_is_refused(tmp_path, unchanged):
    root = write_wsol(tmp_path / "data")
    write_lines(root / "metadata" / "test" / "localization.txt", ["a.png,masks/a.png,", "b.png,/etc/mask.png,"])
    unchanged()
    with pytest.raises(ValueError, match=r"localization.txt:2: mask path '/etc/mask.png' is absolute") as error:
        wsol(root)
    one_line(error.value)


def test_folder_and_cub_paths_outside_their_root_are_refused(tmp_path, unchanged):
    folder = tmp_path / "mine"
    folder.mkdir()
    Image.new("RGB", (8, 8)).save(folder / "a.png")
    write_lines(folder / "annotations.csv", ["path,label,x0,y0,x1,y1,split", "a.png,cat,0,0,4,4,test",
                                             "/etc/secret.png,cat,0,0,4,4,test"])
    cub = tmp_path / "CUB_200_2011"
    write_lines(cub / "images.txt", ["1 001.a/x.jpg", "2 ../../secret.jpg"])
    write_lines(cub / "image_class_labels.txt", ["1 1", "2 1"])
    write_lines(cub / "train_test_split.txt", ["1 0", "2 0"])
    unchanged()
    with pytest.raises(ValueError, match=r"annotations.csv:3: image path '/etc/secret.png' is absolute") as error:
        build_dataset("folder", "test", data_root=folder)
    one_line(error.value)
    with pytest.raises(ValueError, match=r"images.txt:2: image path '../../secret.jpg' leads outside") as error:
        build_dataset("cub", "test", data_root=cub, check_files_exist=False)
    one_line(error.value)


# ----------------------------------------------------------------------------- silent wrong results
def test_a_duplicate_image_id_is_refused_not_counted_twice(tmp_path, unchanged):
    root = write_wsol(tmp_path / "data", ids=("a.png", "b.png"))
    write_lines(root / "metadata" / "test" / "image_ids.txt", ["a.png", "b.png", "a.png"])
    unchanged()
    with pytest.raises(ValueError) as error:
        wsol(root)
    text = one_line(error.value)
    assert "image_ids.txt:3: image id 'a.png' is listed again (first at" in text and "image_ids.txt:1)" in text
    assert "remove the repeated line" in text


def test_conflicting_labels_for_one_image_are_refused(tmp_path, unchanged):
    root = write_wsol(tmp_path / "data", labels=["a.png,0", "b.png,1", "a.png,1"])
    unchanged()
    with pytest.raises(ValueError) as error:
        wsol(root)
    text = one_line(error.value)
    assert "class_labels.txt:3: image id 'a.png' is listed again (first at" in text and "class_labels.txt:1)" in text


def test_a_duplicate_ilsvrc_row_is_refused(tmp_path, unchanged):
    root = tmp_path / "ilsvrc"
    (root / "val").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "val" / "ILSVRC2012_val_00000001.JPEG")
    write_lines(root / "LOC_synset_mapping.txt", ["n01440764 tench", "n01443537 goldfish"])
    write_lines(root / "LOC_val_solution.csv", ["ImageId,PredictionString",
                                                "ILSVRC2012_val_00000001,n01440764 1 1 4 4",
                                                "ILSVRC2012_val_00000001,n01443537 1 1 4 4"])
    unchanged()
    with pytest.raises(ValueError) as error:
        build_dataset("ilsvrc", "test", data_root=root)
    text = one_line(error.value)
    assert "LOC_val_solution.csv:3: ImageId 'ILSVRC2012_val_00000001' is listed again" in text, text


def test_non_utf8_metadata_names_the_file_and_line(tmp_path, unchanged):
    root = write_wsol(tmp_path / "data")
    (root / "metadata" / "test" / "class_labels.txt").write_bytes(b"a.png,0\nb\xe9.png,1\n")
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "annotations.csv").write_bytes(b"path,label,x0,y0,x1,y1\na.png,caf\xe9,0,0,4,4\n")
    unchanged()
    with pytest.raises(ValueError) as error:
        wsol(root)
    text = one_line(error.value)
    assert "class_labels.txt:2: not UTF-8 text (byte 0xe9" in text and "save the file as UTF-8" in text, text
    with pytest.raises(ValueError) as error:
        build_dataset("folder", "test", data_root=folder)
    assert "annotations.csv:2: not UTF-8 text" in one_line(error.value)


def test_a_wrong_image_size_is_reported_at_its_line_of_image_sizes_txt(tmp_path, unchanged):
    from spg_core.data import DataWarning

    root = write_wsol(tmp_path / "data")
    write_lines(root / "metadata" / "test" / "image_sizes.txt", ["a.png,16,16", "b.png,32,16"])
    unchanged()
    dataset = wsol(root)
    with pytest.warns(DataWarning) as caught:
        dataset.load_sample(1)
    text = " ".join(str(w.message) for w in caught)
    assert "image_sizes.txt:2) says 32x16 but the image is 16x16" in text, text
    assert "class_labels.txt" not in text


# ----------------------------------------------------------------------------- the app
pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from app_runs import write_tiny_run  # noqa: E402
from spg_app.paths import ROOTS_VARIABLE  # noqa: E402
from test_app import start  # noqa: E402


@pytest.fixture
def roots(tmp_path, monkeypatch):
    """tmp_path/allowed is the app's only root (with the shipped runs); tmp_path/outside is not."""
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    Image.new("RGB", (16, 16), (255, 0, 0)).save(outside / "secret.png")
    (outside / "secret.txt").write_text("top secret\n")
    monkeypatch.setenv(ROOTS_VARIABLE, str(allowed))
    return allowed, outside


def app(page: str | None = None, **state) -> AppTest:
    """The app opened on ``page`` with ``state`` in its session (no run folder of its own)."""
    return start(None, page, **state)


def shown_texts(at: AppTest) -> list[str]:
    """Every message, caption and Markdown text of the page and the sidebar."""
    kinds = ("markdown", "caption", "info", "error", "warning")
    return [str(e.value) for kind in kinds for e in [*getattr(at, kind), *getattr(at.sidebar, kind)]]


def maps_state(data: Path, maps: Path, **state) -> dict:
    return {"model_choice": "__maps__", "maps_dir": str(maps), "maps_label": "mine",
            "maps_metadata_root": str(data / "metadata"), "maps_data_root": str(data), **state}


@pytest.mark.parametrize("listed", ["/outside/secret.png", "../../../outside/secret.png"])
def test_the_app_refuses_a_dataset_listing_an_image_outside(roots, unchanged, listed):
    allowed, outside = roots
    listed = listed.replace("/outside", str(outside)) if listed.startswith("/") else listed
    data = write_wsol(allowed / "data", ids=("a.png", listed))
    maps = write_maps(allowed / "maps", ["a.png"])
    unchanged()
    at = app("triage", **maps_state(data, maps))
    errors = [e.value for e in at.sidebar.error]
    assert len(errors) == 1 and "Could not open the metadata" in errors[0], errors
    assert "image_ids.txt:2: image path" in errors[0] and "relative to" in one_line(errors[0])
    assert str(allowed) not in errors[0]  # shown relative to the root


def test_the_app_refuses_dataset_files_linked_outside(roots, unchanged):
    allowed, outside = roots
    data = write_wsol(allowed / "data", ids=("a.png", "b.png"))
    (data / "images" / "b.png").unlink()
    (data / "images" / "b.png").symlink_to(outside / "secret.png")
    maps = write_maps(allowed / "maps", ["a.png", "b.png"])
    names = allowed / "names"
    write_wsol(names)
    (names / "metadata" / "class_names.txt").unlink()
    (names / "metadata" / "class_names.txt").symlink_to(outside / "secret.txt")
    unchanged()
    at = app("triage", **maps_state(data, maps))
    error = one_line(" ".join(e.value for e in at.sidebar.error))
    assert "class_labels.txt:2: the dataset file data/images/b.png leads to" in error and "secret.png" in error
    assert "outside the folders this app may read" in error
    at = app("triage", **maps_state(names, maps))
    error = one_line(" ".join(e.value for e in at.sidebar.error))
    assert "names/metadata/class_names.txt leads to" in error and "top secret" not in error


def test_the_app_refuses_a_checkpoint_linked_outside(roots, unchanged):
    allowed, outside = roots
    write_tiny_run(outside / "run")
    run = allowed / "run"
    run.mkdir()
    (run / "checkpoint.pt").symlink_to(outside / "run" / "checkpoint.pt")
    unchanged()
    at = app(model_choice="__run_dir__", run_dir=str(run))
    error = one_line(" ".join(e.value for e in at.sidebar.error))
    assert "Could not load the run" in error and "the run file run/checkpoint.pt leads to" in error, error
    assert ROOTS_VARIABLE in error


def test_the_app_refuses_a_map_linked_outside(roots, unchanged):
    allowed, outside = roots
    data = write_wsol(allowed / "data")
    maps = write_maps(allowed / "maps", ["a.png"])
    write_maps(outside / "maps", ["b.png"])
    (maps / "b.png.npy").symlink_to(outside / "maps" / "b.png.npy")
    unchanged()
    at = app("dataset", **maps_state(data, maps, eval_n=2))
    at.button(key="evaluate_button").click().run()
    assert not at.exception, [e.message for e in at.exception]
    error = one_line(" ".join(e.value for e in at.error))
    assert "Evaluation of mine (maps folder) failed: the map maps/b.png.npy leads to" in error, error
    assert not at.dataframe


def test_a_forged_map_is_one_line_in_the_app(roots, unchanged):
    allowed, _ = roots
    data = write_wsol(allowed / "data")
    maps = write_maps(allowed / "maps", ["a.png"])
    (maps / "b.png.npy").write_bytes(npy_header((100000, 100000)) + bytes(64))
    unchanged()
    at = app("triage", **maps_state(data, maps, triage_n=2))
    at.button(key="triage_button").click().run()
    assert not at.exception, [e.message for e in at.exception]
    error = one_line(" ".join(e.value for e in at.error))
    assert "maps/b.png.npy: shape (100000, 100000) (10000000000 elements) exceeds the limit" in error, error
    assert str(allowed) not in error


def test_markdown_in_class_and_file_names_is_shown_as_text(roots, unchanged):
    allowed, _ = roots
    image_id = "![x](y).png"
    data = write_wsol(allowed / "data", ids=(image_id, "b.png"), names=(MARKDOWN_IMAGE, "dog"))
    maps = write_maps(allowed / "maps", [image_id, "b.png"])
    unchanged()
    at = app("triage", **maps_state(data, maps, triage_n=2, triage_failures=["ok", "wrong-class", "part-only",
                                                                               "too-large", "wrong-place"]))
    at.button(key="triage_button").click().run()
    assert not at.exception, [e.message for e in at.exception]
    texts = shown_texts(at)
    shown = [t for t in texts if "example.com" in t]
    assert shown and all("!\\[\\](http://example.com/x.png)" in t for t in shown), shown
    assert any("!\\[x\\](y).png" in t for t in texts), texts
    assert not [t for t in texts if re.search(r"!\[[^\]]*\]\(", t)]  # no Markdown image left


def test_a_typed_path_with_markdown_is_shown_as_text(roots):
    at = app(model_choice="__run_dir__", run_dir=f"{MARKDOWN_IMAGE}/run")
    error = one_line(" ".join(e.value for e in at.sidebar.error))
    assert "!\\[\\](http://example.com/x.png)" in error and "![](" not in error, error


def test_refusals_name_no_install_path_or_process_id(roots):
    at = app(model_choice="__run_dir__", run_dir="/proc/self/cwd")
    error = one_line(" ".join(e.value for e in at.sidebar.error))
    assert "outside the folders this app may read" in error, error
    install = Path(spg_core.__file__).resolve().parents[1]  # the checkout, or site-packages
    assert str(install) not in error and f"/proc/{os.getpid()}" not in error, error
    assert "the shipped runs" in error


# ----------------------------------------------------------------------------- evaluation.json.gz
@functools.lru_cache(maxsize=2)
def spaces_member(inflated: int) -> bytes:
    """One gzip member of ``inflated`` bytes of spaces (JSON whitespace) then ``]}``, compressed in
    1 MB pieces so the test never holds the inflated text: about 0.5 MB for 512 MB."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    piece = b" " * (1 << 20)
    parts = [packer.compress(piece) for _ in range(inflated >> 20)]
    return b"".join(parts) + packer.compress(b"]}") + packer.flush()


def gzip_bomb(path: Path, head: bytes, inflated: int) -> Path:
    """A gzip file (two members, read as one stream) of ``head``, ``inflated`` spaces and ``]}``."""
    path.write_bytes(gzip.compress(head) + spaces_member(inflated))
    return path


def bomb_head(digest: str) -> bytes:
    return f'{{"format": 1, "checkpoint_sha256": "{digest}", "created": "2026-01-01", "entries": ['.encode()


@pytest.fixture
def bombed_run(roots):
    """A tiny run in the root whose evaluation.json.gz (about 0.5 MB) inflates to 512 MB, made for
    its own checkpoint; and a copy whose file names another checkpoint."""
    from spg_app.precomputed import EVALUATION_FILE
    from spg_app.runs import checkpoint_digest

    allowed, _ = roots
    run = write_tiny_run(allowed / "bombed")
    gzip_bomb(run / EVALUATION_FILE, bomb_head(checkpoint_digest(run)), 512 << 20)
    stale = write_tiny_run(allowed / "stale")
    gzip_bomb(stale / EVALUATION_FILE, bomb_head("0" * 64), 512 << 20)  # another checkpoint's digest
    assert (run / EVALUATION_FILE).stat().st_size < 2 << 20
    return run, stale


@pytest.fixture
def inflations(monkeypatch):
    """How many times the app inflated an evaluation file."""
    from spg_app import precomputed

    calls = []
    original = precomputed.inflate

    def counted(path, *args, **kwargs):
        calls.append(str(path))
        return original(path, *args, **kwargs)

    monkeypatch.setattr(precomputed, "inflate", counted)
    return calls


def test_an_evaluation_bomb_is_refused_within_a_bounded_memory(bombed_run, unchanged):
    run, _ = bombed_run
    unchanged()
    result = memory_probe("from spg_app.precomputed import stored_note",
                          'stored_note(sys.argv[1], {"kind": "evaluate"}, None)', "Exception", run)
    assert result["grew_mb"] < 200, result
    note = one_line(result["outcome"])
    assert "evaluation.json.gz cannot be read (it inflates to more than 32 MB, the limit)" in note, note
    assert "ship_run.py --evaluation-only" in note


def test_a_stale_evaluation_bomb_is_set_aside_without_inflating(bombed_run, inflations, unchanged):
    _, stale = bombed_run
    unchanged()
    at = app("dataset", model_choice="__run_dir__", run_dir=str(stale))
    assert any("computed with another checkpoint.pt: ignored as stale" in c.value for c in at.caption)
    assert inflations == []


def test_the_dataset_and_triage_pages_report_the_bomb_and_read_it_once(bombed_run, inflations, unchanged):
    run, _ = bombed_run
    unchanged()
    for page in ("dataset", "triage", "dataset"):
        at = app(page, model_choice="__run_dir__", run_dir=str(run))
        notes = [c.value for c in at.caption if "evaluation.json.gz" in c.value]
        assert notes and "it inflates to more than 32 MB, the limit" in one_line(notes[0]), notes
        assert any(b.key in ("evaluate_button", "triage_button") for b in at.button)  # nothing taken from it
    assert len(inflations) == 1, inflations
