"""Your own inputs in the notebooks (issue 13.1, 13.2): one workspace (`paths.use_workspace`), uploads and browser
recordings saved and checked (`inputs`), the teleprompter (`recorder`), whose inputs a notebook found, and the rule
that the sample never replaces what is yours (`pipeline.ensure_*`, `inputs.choose_*`)."""
from __future__ import annotations

import base64
import html
import json
import os
import re
import sys
import types

import cv2
import numpy as np
import pytest

from talkinghead import bake, corpus, inputs, paths, pipeline, recorder, video
from talkinghead.errors import MediaError, TalkingHeadError

SR = 16000


def _video(path, seconds: float, sound: str = "tone", size: int = 32):
    """A tiny mp4: grey frames with a moving square, and a 220 Hz tone ("tone"), a silent track ("silent") or none."""
    n = int(round(seconds * 25))
    frames = []
    for k in range(n):
        f = np.full((size, size, 3), 90, np.uint8)
        f[k % (size - 8):k % (size - 8) + 8, 4:12] = 230
        frames.append(f)
    t = np.arange(int(seconds * SR)) / SR
    audio = None if sound == "none" else ((0.3 * np.sin(2 * np.pi * 220 * t) if sound == "tone" else 0 * t)
                                          .astype(np.float32), SR)
    return video.write_video(path, frames, audio=audio, progress=False)


@pytest.fixture
def ws(workspace):
    paths.use_workspace(workspace)
    return workspace


# ------------------------------------------------------------------------------------------------ workspace
def test_use_workspace_sets_the_folder_every_stage_reads(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.WORKSPACE_ENV, str(tmp_path / "before"))
    assert paths.use_workspace(None) == (tmp_path / "before").resolve()          # None keeps $TALKINGHEAD_WORKSPACE
    root = paths.use_workspace(tmp_path / "drive-like" / "course")
    assert root.is_dir() and os.environ[paths.WORKSPACE_ENV] == str(root)
    assert paths.avatar_dir() == root / "avatar" and paths.inputs_dir() == root / "inputs"


def test_a_drive_workspace_mounts_drive_in_colab_and_is_one_sentence_elsewhere(tmp_path, monkeypatch):
    drive_root = tmp_path / "content" / "drive"
    monkeypatch.setattr(paths, "DRIVE_ROOT", str(drive_root))
    monkeypatch.delenv(paths.WORKSPACE_ENV, raising=False)
    with pytest.raises(TalkingHeadError, match="mounted only in Colab; outside Colab set WORKSPACE"):
        paths.use_workspace(drive_root / "MyDrive" / "talkinghead")
    mounted = []

    def mount(where):
        mounted.append(where)
        (drive_root / "MyDrive").mkdir(parents=True)

    colab = types.ModuleType("google.colab")
    colab.drive = types.SimpleNamespace(mount=mount)
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    root = paths.use_workspace(drive_root / "MyDrive" / "talkinghead")
    assert mounted == [str(drive_root)] and root == drive_root / "MyDrive" / "talkinghead" and root.is_dir()
    paths.use_workspace(drive_root / "MyDrive" / "talkinghead")                  # mounted already: not again
    assert mounted == [str(drive_root)]


def test_find_input_takes_the_newest_of_a_kind(ws):
    assert paths.find_input("portrait") is None
    d = paths.inputs_dir()
    d.mkdir(parents=True)
    (d / "portrait.png").write_bytes(b"a")
    (d / "portrait.jpg").write_bytes(b"b")
    os.utime(d / "portrait.png", (1, 1))
    assert paths.find_input("portrait") == d / "portrait.jpg"
    assert paths.find_input("recording") is None
    with pytest.raises(ValueError, match="unknown input kind"):
        paths.find_input("voice")


# ------------------------------------------------------------------------------------------------ recordings
def test_a_recording_with_sound_is_saved_from_a_data_url(ws, tmp_path):
    src = _video(tmp_path / "take.mp4", 1.6)
    url = "data:video/mp4;codecs=avc1,mp4a;base64," + base64.b64encode(src.read_bytes()).decode()
    saved = inputs.save_recording(url, min_s=1.0)
    assert saved == paths.inputs_dir() / "recording.mp4" and saved.read_bytes() == src.read_bytes()
    info = inputs.check_recording(saved, min_s=1.0)
    assert info.has_audio and 1.5 < info.duration_s < 1.7
    # a browser's webm data URL (no codecs) and plain base64 decode too; the suffix follows the type
    assert inputs.decode_recording("data:video/webm;base64," + base64.b64encode(b"xyz").decode()) == (b"xyz", ".webm")
    assert inputs.decode_recording(base64.b64encode(b"xyz").decode()) == (b"xyz", ".webm")


@pytest.mark.parametrize("sound, seconds, message", [
    ("none", 1.6, "take.mp4: has no sound; record again with the microphone allowed"),
    ("silent", 1.6, "take.mp4: its sound track is silent"),
    ("tone", 0.6, r"take.mp4: only 0.6 s long, but at least 1 s of speech is needed"),
])
def test_a_recording_without_sound_or_too_short_is_one_sentence_and_not_kept(ws, tmp_path, sound, seconds, message):
    good = inputs.save_recording(_video(tmp_path / "good.mp4", 1.6).read_bytes(), min_s=1.0)
    before = good.read_bytes()
    bad = _video(tmp_path / "bad.mp4", seconds, sound)
    with pytest.raises(MediaError, match=message) as err:
        inputs.save_input("recording", "take.mp4", bad.read_bytes(), min_s=1.0)
    assert "\n" not in str(err.value) and str(paths.inputs_dir()) not in str(err.value)   # your file's name, no temp
    assert sorted(p.name for p in paths.inputs_dir().iterdir()) == ["recording.webm"]        # nothing half-kept
    assert good.read_bytes() == before


def test_the_default_minimum_length_and_bad_bytes(ws, tmp_path):
    short = _video(tmp_path / "short.mp4", 1.0)
    with pytest.raises(MediaError, match=f"only 1.0 s long, but at least {inputs.MIN_RECORDING_S:g} s"):
        inputs.check_recording(short)
    with pytest.raises(MediaError, match="^clip.webm: ffmpeg cannot read it"):
        inputs.save_input("recording", "clip.webm", b"\x1aE\xdf\xa3 not really a webm")
    with pytest.raises(MediaError, match="did not arrive whole"):
        inputs.save_recording("data:video/webm;base64,@@@")
    with pytest.raises(MediaError, match="notes.txt: not a recording file"):
        inputs.save_input("recording", "notes.txt", b"hello")
    assert not paths.inputs_dir().exists() or not any(paths.inputs_dir().iterdir())


# ------------------------------------------------------------------------------------------------ portraits, uploads
def _png(img) -> bytes:
    return cv2.imencode(".png", np.ascontiguousarray(img[..., ::-1]))[1].tobytes()


def test_an_uploaded_portrait_replaces_the_previous_one_and_a_broken_one_is_refused(ws):
    img = bake.sample_portrait()[::4, ::4]
    first = inputs.save_input("portrait", "me.png", _png(img))
    assert first.name == "portrait.png" and np.array_equal(bake.load_portrait(first), img)
    jpg = cv2.imencode(".jpg", img[..., ::-1])[1].tobytes()
    second = inputs.save_input("portrait", "Me.JPG", jpg)
    assert second.name == "portrait.jpg" and not first.exists()
    with pytest.raises(MediaError, match="^broken.png: "):
        inputs.save_input("portrait", "broken.png", b"\x89PNG not an image")
    assert [p.name for p in paths.inputs_dir().iterdir()] == ["portrait.jpg"]


def test_upload_reads_ipywidgets_7_and_8_values_and_colab_files(ws, monkeypatch):
    img = _png(bake.sample_portrait()[::4, ::4])
    w8 = types.SimpleNamespace(value=({"name": "me.png", "content": memoryview(img), "size": len(img)},))
    w7 = types.SimpleNamespace(value={"me.png": {"content": img, "metadata": {}}})
    for w in (w8, w7):
        up = inputs.Upload("portrait", widget=w)
        assert up.files() == [("me.png", img)]
    assert inputs.Upload("portrait", widget=types.SimpleNamespace(value=())).save() is None
    # outside a notebook an upload cell does nothing (scripts, nbval's kernel shows a widget that stays empty)
    up = inputs.upload("portrait")
    assert up.files() == [] and up.save() is None
    colab = types.ModuleType("google.colab")
    asked = []
    colab.files = types.SimpleNamespace(upload=lambda: asked.append(1) or {"me.png": img})
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    up = inputs.upload("portrait")
    assert asked == [1] and up.save() == paths.inputs_dir() / "portrait.png"
    assert inputs.upload("portrait").files() == [] and asked == [1]      # yours is there: not asked again
    assert inputs.upload("portrait", ask=True).files() == [("me.png", img)] and asked == [1, 1]


# ------------------------------------------------------------------------------------------------ the teleprompter
def test_the_teleprompter_shows_every_script_line_in_order(ws):
    pool = corpus.load_pool()
    script = corpus.select_lines(pool)
    corpus.write_unspoken_index(script, paths.corpus_dir())
    lines = recorder.teleprompter_lines()
    assert [l.id for l in lines] == [l.id for l in script]
    page = recorder.teleprompter_html(lines)
    at = -1
    for line in lines:
        at = page.index(html.escape(line.text), at + 1)         # each line, after the one before
    assert page.count('class="th-line"') == len(lines)
    assert page.count("display:block") == 1                     # one line at a time
    js = recorder.recorder_js()
    assert "MediaRecorder" in js and "getUserMedia" in js and "thRecording" in js
    assert json.dumps(page) in recorder._call(page, download=False)


def test_recording_is_off_or_explained_outside_a_browser(ws, capsys):
    assert recorder.record(enabled=False) is None
    assert "RECORD = False" in capsys.readouterr().out
    assert recorder.record([corpus.load_pool()[0]]) is None
    assert "film the script" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------ yours, never replaced
def _fake_dataset(video_name: str):
    d = paths.data_dir()
    d.mkdir(parents=True, exist_ok=True)
    (d / "dataset.npz").write_bytes(b"the student's motion")
    (d / "dataset.json").write_text(json.dumps({"source": {"video": video_name, "sha256": "0" * 64}}))


def test_a_students_dataset_is_kept_and_reported_as_yours(ws, monkeypatch):
    _fake_dataset("me.mp4")

    def no_sample(*a, **k):
        raise AssertionError("the sample recording was made over a student's dataset")

    monkeypatch.setattr(pipeline, "ensure_sample_recording", no_sample)
    monkeypatch.setattr(pipeline, "extract", no_sample)
    assert pipeline.ensure_dataset(verbose=False).read_bytes() == b"the student's motion"
    assert str(inputs.recording_status()) == "recording: yours (data/dataset.npz extracted from me.mp4)"
    with pytest.raises(TalkingHeadError, match="your recording me.mp4, which is not in this workspace, so it is not "
                                               "replaced by the sample's; set VIDEO"):
        inputs.choose_recording(None)
    assert (paths.data_dir() / "dataset.npz").read_bytes() == b"the student's motion"


def test_ensure_dataset_extracts_your_uploaded_recording_not_the_sample(ws, tmp_path, monkeypatch):
    saved = inputs.save_recording(_video(tmp_path / "me.mp4", 1.6).read_bytes(), min_s=1.0)
    seen = []
    monkeypatch.setattr(pipeline, "ensure_sample_recording", lambda *a, **k: pytest.fail("sample made"))
    monkeypatch.setattr(pipeline, "extract", lambda video, dataset, **k: seen.append(video))
    pipeline.ensure_dataset(verbose=False)
    assert seen == [saved]
    assert "yours (inputs/recording.webm, not extracted yet" in str(inputs.recording_status())
    choice = inputs.choose_recording(None)
    assert choice.yours and choice.path == saved


def test_a_bundle_baked_from_your_photo_is_kept_rebaked_from_itself_and_reported(ws):
    from stage_fixtures import liveportrait

    mine = np.ascontiguousarray(bake.sample_portrait()[:, ::-1])      # another photo: the astronaut mirrored
    bake.bake(mine, paths.avatar_dir(), lp=liveportrait(), name="me.jpg")
    manifest = (paths.avatar_dir() / "manifest.json").read_bytes()
    assert pipeline.ensure_bundle(verbose=False) == paths.avatar_dir()
    assert (paths.avatar_dir() / "manifest.json").read_bytes() == manifest          # not re-baked from the sample
    assert str(inputs.portrait_status()) == "portrait: yours (avatar/ baked from me.jpg)"
    choice = inputs.choose_portrait(None)                                           # notebook 02 without PORTRAIT
    assert choice.yours and choice.name == "me.jpg" and np.array_equal(choice.image(), mine)
    lines = inputs.describe(show=False)
    assert lines[1] == "portrait: yours (avatar/ baked from me.jpg)"
    assert lines[2].startswith("recording: the sample recording (not extracted yet")


def test_the_sample_is_used_only_without_yours_and_says_so(ws, monkeypatch):
    from stage_fixtures import liveportrait

    assert str(inputs.portrait_status()).startswith("portrait: the sample astronaut (not baked yet")
    assert inputs.choose_portrait(None).owner == "sample"
    saved = inputs.save_input("portrait", "me.png", _png(bake.sample_portrait()[:, ::-1]))
    assert "yours (inputs/portrait.png, not baked yet" in str(inputs.portrait_status())
    baked = []
    monkeypatch.setattr(pipeline, "bake", lambda portrait, out, **k: baked.append((portrait, k.get("name"))))
    pipeline.ensure_bundle(verbose=False)
    assert baked == [(saved, None)]                                                 # yours, not the astronaut
    monkeypatch.undo()
    paths.use_workspace(ws)
    bake.bake(bake.sample_portrait(), paths.avatar_dir(), lp=liveportrait(), name="astronaut.png")
    assert str(inputs.portrait_status()) == ("portrait: the sample astronaut (avatar/ baked from astronaut.png; yours "
                                             "is waiting in inputs/portrait.png: notebook 02 bakes it)")
    assert inputs.choose_portrait(None).path == saved
    with pytest.raises(MediaError, match="nowhere.jpg: no such file; check PORTRAIT's path"):
        inputs.choose_portrait(str(ws / "nowhere.jpg"))


def test_your_portrait_may_replace_only_the_sample_bundle(ws):
    from stage_fixtures import liveportrait

    mine = inputs.Found("portrait", "yours", None, "test", "me.jpg")
    sample = inputs.Found("portrait", "sample", None, "test", "astronaut.png")
    assert not inputs.replaces_only_the_sample(mine)                          # no bundle: nothing to replace
    bake.bake(bake.sample_portrait(), paths.avatar_dir(), lp=liveportrait(), name="astronaut.png")
    assert inputs.replaces_only_the_sample(mine) and not inputs.replaces_only_the_sample(sample)
    bake.bake(np.ascontiguousarray(bake.sample_portrait()[:, ::-1]), paths.avatar_dir(), lp=liveportrait(),
              name="me.jpg", force=True)
    assert not inputs.replaces_only_the_sample(mine)                          # yours: never forced


# ------------------------------------------------------------------------------------------------ the recorder, in Chromium
def test_the_recorder_records_camera_and_microphone_in_chromium_and_the_video_is_kept(ws, tmp_path):
    """The browser half of notebook 03's recorder in headless Chromium with its fake camera and microphone: Start,
    the teleprompter steps on the space bar, Stop; the data URL it leaves is what Colab's bridge hands to Python."""
    import http.server
    import threading

    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extra)")
    from talkinghead import serve

    chromium = serve.find_chromium()
    if chromium is None:
        pytest.skip("no Chromium on this machine: apt-get install chromium (or set TALKINGHEAD_CHROMIUM)")
    (tmp_path / "page").mkdir()
    (tmp_path / "page" / "index.html").write_text("<!doctype html><html><body></body></html>")
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path / "page"), **k)  # noqa: E731
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    lines = corpus.select_lines(corpus.load_pool())[:3]
    try:
        with sync_api.sync_playwright() as p:
            b = p.chromium.launch(executable_path=chromium, args=serve.CHROMIUM_ARGS + [
                "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"])
            page = b.new_page()
            page.goto(f"http://127.0.0.1:{srv.server_address[1]}/index.html")
            page.add_script_tag(content=recorder.recorder_js())
            page.evaluate("prompter => { thRecord(prompter, 1000000, false).then(m => { window.meta = m; }); }",
                          recorder.teleprompter_html(lines))
            page.click("text=Start recording", timeout=30_000)
            page.keyboard.press("Space")
            assert page.evaluate("document.querySelector('.th-line[data-i=\"1\"]').style.display") == "block"
            page.wait_for_timeout(2500)
            page.click("text=Stop")
            page.wait_for_function("window.meta !== undefined", timeout=30_000)
            meta, data = page.evaluate("window.meta"), page.evaluate("window.thRecording")
            b.close()
    finally:
        srv.shutdown()
    assert "error" not in meta and meta["mime"].startswith("video/") and meta["chars"] == len(data)
    saved = inputs.save_recording(data, min_s=1.5)
    info = inputs.check_recording(saved, min_s=1.5)
    assert saved.parent == paths.inputs_dir() and info.has_audio and info.width > 0 and 1.5 <= info.duration_s < 6


def test_in_colab_the_recording_comes_back_in_chunks_through_eval_js(ws, tmp_path, monkeypatch):
    """Colab's bridge faked: `eval_js` answers the recorder's call with its metadata, then hands the data URL over in
    slices of CHUNK_CHARS; Python joins them, saves and checks the video."""
    url = "data:video/mp4;base64," + base64.b64encode(_video(tmp_path / "take.mp4", 1.6).read_bytes()).decode()
    calls = []

    def eval_js(script, ignore_result=False):
        calls.append(script)
        if script.startswith("thRecord("):
            return {"size": 1234, "mime": "video/mp4", "chars": len(url)}
        m = re.match(r"window\.thRecording\.slice\((\d+), (\d+)\)", script)
        return url[int(m.group(1)):int(m.group(2))] if m else None

    colab = types.ModuleType("google.colab")
    output = types.ModuleType("google.colab.output")
    output.eval_js = eval_js
    colab.output = output
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.output", output)
    monkeypatch.setattr(recorder, "CHUNK_CHARS", 4096)
    saved = recorder.record(corpus.load_pool()[:2], min_s=1.0)
    assert saved == paths.inputs_dir() / "recording.mp4" and inputs.check_recording(saved, min_s=1.0).has_audio
    slices = [c for c in calls if c.startswith("window.thRecording.slice")]
    assert len(slices) == -(-len(url) // 4096) and calls[-1] == "delete window.thRecording"
    calls.clear()
    output.eval_js = lambda script, ignore_result=False: {"error": "NotAllowedError: Permission denied"}
    with pytest.raises(MediaError, match=r"the browser gave no camera or microphone \(NotAllowedError"):
        recorder.record(corpus.load_pool()[:2], min_s=1.0)


def test_model_status_says_when_training_or_export_is_older_than_its_inputs(ws):
    assert inputs.model_status() == "Audio2Motion: not trained yet (notebook 04)"
    _fake_dataset("me.mp4")
    avatar = paths.avatar_dir()
    avatar.mkdir(parents=True)
    ckpt = avatar / "audio2motion.pt"
    ckpt.write_bytes(b"weights")
    (avatar / "manifest.json").write_text(json.dumps({"files": {}}))
    os.utime(paths.data_dir() / "dataset.npz", (100, 100))
    os.utime(avatar / "manifest.json", (100, 100))
    os.utime(ckpt, (200, 200))
    assert inputs.model_status() == ("Audio2Motion: trained (avatar/audio2motion.pt); not exported to ONNX yet "
                                     "(notebook 05)")
    (avatar / "manifest.json").write_text(json.dumps({"files": {}, "models": {"renderer": {}}}))
    os.utime(avatar / "manifest.json", (300, 300))
    assert inputs.model_status().endswith("; ONNX exported (notebook 05)")
    os.utime(paths.data_dir() / "dataset.npz", (250, 250))                  # your recording extracted after training
    os.utime(avatar / "manifest.json", (150, 150))                         # and the export older than the training
    assert inputs.model_status() == ("Audio2Motion: trained (avatar/audio2motion.pt), but before data/dataset.npz was "
                                     "last extracted: run notebook 04 again; ONNX exported before that training: run "
                                     "notebook 05 again")
