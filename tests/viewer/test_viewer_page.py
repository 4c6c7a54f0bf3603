"""The viewer page's files (no browser): what the demo writes, what they hold, the errors, ``maed view``."""

from __future__ import annotations

import base64
import json
import re
import zlib
from pathlib import Path

import numpy as np
import pytest

from maed.cli import main
from maed.errors import DataError
from maed.viewer.page import ViewerPerson, data_file, write_page
from tests.viewer.conftest import NUM_FRAMES, SPANS, demo_run

ROOT = Path(__file__).resolve().parents[2]
VIEWER_FILES = {"index.html", "viewer/three.min.js", "viewer/three.LICENSE", "viewer/viewer.js", "viewer/index.data.js"}


def read_data(page: Path) -> dict:
    text = data_file(page).read_text()
    return json.loads(re.search(r"window\.MAED_VIEWER = (\{.*\});\s*$", text, re.S).group(1))


def test_demo_writes_the_page_and_lists_it_in_the_summary(viewer_run):
    summary = json.loads((viewer_run / "summary.json").read_text())
    assert VIEWER_FILES <= set(summary["outputs"])
    assert all((viewer_run / name).is_file() for name in VIEWER_FILES)
    assert "viewer" in summary["stages"]
    html = (viewer_run / "index.html").read_text()
    # the page loads its scripts by relative, classic <script src> (ES modules are refused from file://)
    assert re.findall(r'<script src="([^"]+)"></script>', html) == [
        "viewer/three.min.js",
        "viewer/index.data.js",
        "viewer/viewer.js",
    ]
    assert 'type="module"' not in html and "http" not in re.sub(r"<!--.*?-->", "", html, flags=re.S)


def test_the_scene_matches_the_tracks_and_the_overlay_colours(viewer_run):
    from maed.render.overlay import track_color

    scene = read_data(viewer_run / "index.html")["scene"]
    with np.load(viewer_run / "tracks.npz") as z:
        assert scene["fps"] == float(z["fps"]) and scene["num_frames"] == int(z["num_frames"]) == NUM_FRAMES
        assert [scene["width"], scene["height"]] == z["image_size"].tolist()
    assert scene["video"] == "overlay.mp4"
    assert [p["id"] for p in scene["people"]] == [1, 2]
    for p in scene["people"]:
        assert (p["first_frame"], p["last_frame"]) == SPANS[p["id"]]
        rgb = tuple(int(p["color"][i : i + 2], 16) / 255 for i in (1, 3, 5))
        assert np.allclose(rgb, track_color(p["id"]), atol=0.5 / 255)
        assert p["glb"] == f"person_{p['id']}.glb"


def test_the_embedded_glbs_are_the_files_byte_for_byte(viewer_run):
    data = read_data(viewer_run / "index.html")
    for p in data["scene"]["people"]:
        embedded = zlib.decompress(base64.b64decode(data["glb"][p["data"]]))
        assert embedded == (viewer_run / p["glb"]).read_bytes()


def test_the_viewer_adds_under_a_megabyte_beyond_the_glbs(viewer_run):
    """The budget of issue 19, read as: every byte the viewer writes except the GLBs' own bytes (the data file's
    base64 copies of them, which a file:// page needs, count with the GLBs; docs/OUTPUTS.md)."""
    data = read_data(viewer_run / "index.html")
    copies = sum(len(v) for v in data["glb"].values())
    total = sum((viewer_run / name).stat().st_size for name in VIEWER_FILES)
    assert total - copies < 1_000_000, (total, copies)
    glbs = sum((viewer_run / p["glb"]).stat().st_size for p in data["scene"]["people"])
    assert copies < 1.4 * glbs  # deflated, then base64 (4/3): never more than base64 of the raw files


def test_no_viewer_writes_no_page(tmp_path, anny_cmu):
    out = demo_run(tmp_path, anny_cmu, viewer=False, render=False)
    assert not (out / "index.html").exists() and not (out / "viewer").exists()
    assert not VIEWER_FILES & set(json.loads((out / "summary.json").read_text())["outputs"])


def test_a_page_shows_only_this_runs_files(tmp_path, anny_cmu):
    """Without --no-export's GLBs and the overlay, the page says so instead of showing another run's files."""
    out = demo_run(tmp_path, anny_cmu, export=False, render=False)
    scene = read_data(out / "index.html")["scene"]
    assert scene["people"] == [] and scene["video"] is None and "--no-export" in scene["note"]


def test_write_page_refuses_what_it_cannot_show(tmp_path):
    glb = tmp_path / "person_1.glb"
    glb.write_bytes(b"not a glb")
    page = tmp_path / "index.html"
    kw = dict(fps=25.0, num_frames=10, width=64, height=48)
    with pytest.raises(DataError, match="not a glTF binary file"):
        write_page(page, people=[ViewerPerson(1, glb, 0, 9)], **kw)
    with pytest.raises(DataError, match="person_7.glb not found"):
        write_page(page, people=[ViewerPerson(7, tmp_path / "person_7.glb", 0, 9)], **kw)
    with pytest.raises(DataError, match=r"spans frames 3-12; expected frames within 0-9"):
        write_page(page, people=[ViewerPerson(1, glb, 3, 12)], **kw)
    with pytest.raises(DataError, match="frame rate 0.0"):
        write_page(page, people=[], **{**kw, "fps": 0.0})
    with pytest.raises(DataError, match="video .*missing.mp4 not found"):
        write_page(page, people=[], video=tmp_path / "missing.mp4", **kw)
    assert not page.exists()


def test_vendored_three_is_the_pinned_build(tmp_path):
    """The bundle says which three.js and esbuild made it, and they are those scripts/vendor_three.sh pins."""
    script = (ROOT / "scripts" / "vendor_three.sh").read_text()
    three = re.search(r"^THREE_VERSION=(\S+)", script, re.M).group(1)
    esbuild = re.search(r"^ESBUILD_VERSION=(\S+)", script, re.M).group(1)
    vendor = ROOT / "src" / "maed" / "viewer" / "vendor"
    head = (vendor / "three.min.js").read_text()[:400]
    assert f"npm package three@{three}" in head and f"esbuild@{esbuild}" in head
    assert (vendor / "three.LICENSE").read_text().startswith("The MIT License")
    # the classic script defines window.THREE with what viewer.js uses
    entry = re.search(r"<<'EOF'\n(.*?)\nEOF\n", script, re.S).group(1)
    exported = {name for block in re.findall(r"export \{(.*?)\}", entry, re.S) for name in re.findall(r"\w+", block)}
    used = set(re.findall(r"THREE\.(\w+)", (ROOT / "src" / "maed" / "viewer" / "viewer.js").read_text()))
    assert used and used <= exported, used - exported


# ------------------------------------------------------------------------------------------ maed view
def test_view_prints_the_page_without_a_display(viewer_run, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["view", str(viewer_run)]) == 0
    out = capsys.readouterr().out
    assert str(viewer_run / "index.html") in out and (viewer_run / "index.html").as_uri() in out


def test_view_opens_the_page_in_the_browser(viewer_run, capsys, monkeypatch):
    import webbrowser

    opened = []
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or True)
    assert main(["view", str(viewer_run)]) == 0
    assert opened == [(viewer_run / "index.html").resolve().as_uri()]


def test_view_writes_a_missing_page_from_the_demo_outputs(tmp_path, anny_cmu, capsys):
    out = demo_run(tmp_path, anny_cmu, viewer=False, render=False)
    assert main(["view", str(out), "--no-browser"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert [p["id"] for p in read_data(out / "index.html")["scene"]["people"]] == [1, 2]


def test_view_errors_say_what_is_expected(tmp_path, capsys):
    def error(target):
        assert main(["view", str(target), "--no-browser"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("maed view: error: ") and len(err.splitlines()) == 1, err
        return err

    assert "expected the --out folder of `maed demo` (holding index.html)" in error(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    assert "holds no index.html, nor the summary.json and tracks.npz" in error(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("hello")
    assert "not a page" in error(tmp_path / "notes.txt")
