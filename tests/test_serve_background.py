"""Notebook 06's browser section without a browser: `serve.start_in_background` serves a bundle's page from a daemon
thread (the same file rules as `python -m talkinghead serve`) and stops; `show.live.show_page` names the address and,
without onnxruntime-web, how to install it. The page itself is driven in Chromium by tests/test_browser.py."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from talkinghead import bundle, serve
from talkinghead.errors import BundleError
from talkinghead.show import live as show_live


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""


@pytest.fixture
def tiny_bundle(tmp_path):
    """A folder the server accepts: a manifest listing one file, and a file it does not list."""
    path = tmp_path / "avatar"
    path.mkdir()
    (path / "portrait.png").write_bytes(b"\x89PNG listed")
    (path / "notes.txt").write_text("not listed")
    (path / "manifest.json").write_text(json.dumps({"format_version": bundle.FORMAT_VERSION,
                                                    "files": {"portrait.png": {"sha256": "0" * 64}}}))
    return path


@pytest.fixture
def no_web_runtime(tmp_path, monkeypatch):
    monkeypatch.setenv("TALKINGHEAD_ORT_WEB", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))


def test_background_server_serves_the_bundle_then_stops(tiny_bundle, no_web_runtime):
    url, stop = serve.start_in_background(tiny_bundle)
    try:
        assert url.startswith("http://127.0.0.1:") and int(url.rstrip("/").rsplit(":", 1)[1]) > 0
        status, body = _get(url + "config.json")
        cfg = json.loads(body)
        assert status == 200 and cfg["format_version"] == bundle.FORMAT_VERSION and cfg["bundle"] == "/bundle/"
        assert _get(url + "bundle/portrait.png") == (200, b"\x89PNG listed")
        assert _get(url + "bundle/notes.txt")[0] == 404
        assert _get(url + "ort/" + serve.ORT_ENTRY)[0] == 404             # no onnxruntime-web here: nothing to serve
        assert b"app.js" in _get(url)[1]
    finally:
        stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "config.json", timeout=5)


def test_background_server_serves_the_runtime_it_finds(tiny_bundle, tmp_path, monkeypatch):
    ort = tmp_path / "ort"
    ort.mkdir()
    (ort / serve.ORT_ENTRY).write_text("export const x = 1;")
    monkeypatch.setenv("TALKINGHEAD_ORT_WEB", str(ort))
    url, stop = serve.start_in_background(tiny_bundle)
    try:
        assert _get(url + "ort/" + serve.ORT_ENTRY) == (200, b"export const x = 1;")
    finally:
        stop()


def test_background_server_on_a_folder_that_is_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="not an avatar bundle"):
        serve.start_in_background(tmp_path)


def test_show_page_in_plain_python_names_the_address(tmp_path, monkeypatch, capsys):
    ort = tmp_path / "ort"
    ort.mkdir()
    (ort / serve.ORT_ENTRY).write_text("")
    monkeypatch.setenv("TALKINGHEAD_ORT_WEB", str(ort))
    text = show_live.show_page("http://127.0.0.1:8123/")
    assert "http://127.0.0.1:8123/" in text and "--install-web-runtime" not in text
    assert capsys.readouterr().out.strip() == text


def test_show_page_without_onnxruntime_web_says_how_to_get_it(no_web_runtime, capsys):
    text = show_live.show_page("http://127.0.0.1:8123/")
    assert "http://127.0.0.1:8123/" in text
    assert "not installed" in text and "python -m talkinghead serve --install-web-runtime" in text
    assert capsys.readouterr().out.strip() == text


def test_show_page_with_a_wrong_runtime_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TALKINGHEAD_ORT_WEB", str(tmp_path / "nothing"))
    text = show_live.show_page("http://127.0.0.1:8123/")
    assert "nothing: no onnxruntime-web here" in text and "--install-web-runtime" in text
