"""The avatar in a browser (`python -m talkinghead serve`, talkinghead/web/): headless Chromium driven by Playwright
loads a sample-profile bundle with onnxruntime-web and

- renders, for a fixed audio file, frames whose pixels match the Python live engine's (`talkinghead.live`) for the
  same audio: at most 2 grey levels on any pixel, mean under 0.01 (measured: 1 and 3e-6; onnxruntime-web's wasm kernels round differently
  from onnxruntime's CPU ones; the sample profile's generator amplifies float rounding, see talkinghead.export),
  and with the page's fast paste (the canvas instead of paste.onnx) at most 3 grey levels, mean under 0.1;
- with the pocket renderer's frame graph (pocket_frame.onnx: the moving box as bytes over pocket_background.png),
  renders frames that match the Python live engine's on the same bundle within the same 2 grey levels, fetching
  neither pocket.onnx nor paste.onnx (the server's request log), and names a frame graph whose hash does not match;
- keeps sound and picture in sync in live mode: the sound is played `delay` late and frame k is due at input time
  k/fps + delay; a frame ready by then is shown at that time (never before it; at most two frame periods, 80 ms,
  after it, the median at most one: the page's main thread shares this machine's 2 cores), a frame whose render
  overran is shown within 100 ms of being ready, and the delay the page picks covers a render (a frame on time);
- takes the microphone through Chromium's fake capture device (fed a wav) once permission is granted;
- says clearly: no microphone permission, a file that is not audio, a bundle of another format version, a model
  whose hash does not match the manifest.

Needs Debian's `chromium`, PyPI's `playwright` and onnxruntime-web (`python -m talkinghead serve
--install-web-runtime`); `.ci/run` installs all three. A screenshot of the page is saved in the test's tmp folder.
The server's file rules (only files the manifest lists) are tested without a browser.
"""
from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest

from talkinghead import serve

SR, SPF, FPS = 16000, 640, 25
PIXEL_MAX, PIXEL_MEAN = 2, 0.01        # measured here: 1 and 3e-6
FAST_PASTE_MAX, FAST_PASTE_MEAN = 3, 0.1  # the canvas paste (bilinear, 8-bit blending); measured: 2 and 0.02
SHOWN_S = 2 / FPS                      # a frame ready in time is on screen this soon after its time (median 1 / FPS)
LATE_SHOWN_S = 0.1                     # a late frame is on screen this soon after it is ready


# ------------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A sample-profile bundle: baked portrait, a small Audio2Motion whose output moves, an idle loop, fp32 renderer,
    paste, audio2motion and features.onnx."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from talkinghead import features_onnx

    from stage_fixtures import exported_bundle, liveportrait

    lp = liveportrait()                                     # shared with the other stage tests of this process
    path, _, _ = exported_bundle(tmp_path_factory.mktemp("browser") / "avatar", lp, idle_frames=90, n_eval=1,
                                 latency_frames=1)
    if "features" not in json.loads((path / "manifest.json").read_text())["models"]:
        features_onnx.export_features(path)
    return path


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """(short float32 wav of 0.3 s speech, 1.7 s speech wav, its samples)."""
    tts = pytest.importorskip("talkinghead.tts")
    import soundfile as sf

    s = tts.get_backend("espeak").synthesize("Hello there, how are you today?", "en")
    x = tts.to_mono_16k(s.samples, s.sample_rate).astype(np.float32)
    d = tmp_path_factory.mktemp("speech")
    short = x[3000:3000 + 8 * SPF - 123]                     # 8 frames, the last one partial (flushed)
    sf.write(d / "short.wav", short, SR, subtype="FLOAT")
    sf.write(d / "hello.wav", x, SR, subtype="FLOAT")
    return d / "short.wav", d / "hello.wav", short


def _server(path):
    dist = serve.find_ort_web()
    srv = serve.make_server(path, "127.0.0.1", 0, dist)
    return srv, serve.start_in_thread(srv)


@pytest.fixture(scope="module")
def playwright_chromium():
    """(Playwright, the Chromium executable), or a skip that says what to install."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extra)")
    chromium = serve.find_chromium()
    if chromium is None:
        pytest.skip("no Chromium on this machine: apt-get install chromium (or set TALKINGHEAD_CHROMIUM)")
    if serve.find_ort_web() is None:
        pytest.skip("onnxruntime-web is not installed: python -m talkinghead serve --install-web-runtime")
    with sync_api.sync_playwright() as p:
        yield p, chromium


@pytest.fixture(scope="module")
def browser(playwright_chromium, speech):
    p, chromium = playwright_chromium
    b = p.chromium.launch(executable_path=chromium, args=serve.CHROMIUM_ARGS + [
        "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={speech[1]}"])
    yield b
    b.close()


# Chromium's WebGPU on SwiftShader (its CPU Vulkan): no GPU needed, so the page's WebGPU path runs here and in CI
WEBGPU_ARGS = ["--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader", "--enable-features=Vulkan",
               "--use-vulkan=swiftshader"]


@pytest.fixture(scope="module")
def webgpu_browser(playwright_chromium):
    p, chromium = playwright_chromium
    b = p.chromium.launch(executable_path=chromium,
                          args=[a for a in serve.CHROMIUM_ARGS if a != "--disable-gpu"] + WEBGPU_ARGS)
    yield b
    b.close()


def _open(browser, url, wait: str = "window.talkinghead && window.talkinghead.loaded === true"):
    ctx = browser.new_context(viewport={"width": 1100, "height": 720})
    page = ctx.new_page()
    page.goto(url)
    page.wait_for_function(wait, timeout=90_000)
    return ctx, page


@pytest.fixture(scope="module")
def app(browser, bundle):
    srv, url = _server(bundle)
    ctx, page = _open(browser, url)
    assert page.evaluate("talkinghead.error") is None, page.evaluate("talkinghead.error")
    assert page.evaluate("talkinghead.ready") and page.evaluate("self.crossOriginIsolated")
    yield url, ctx, page
    ctx.close()
    srv.shutdown()


def _runs(page) -> int:
    return page.evaluate("talkinghead.runs.length")


def _play(page, path, mode: str, timeout_ms: int = 180_000) -> dict:
    n = _runs(page)
    page.select_option("#mode", mode)
    page.set_input_files("#file", str(path))
    page.wait_for_function(f"talkinghead.runs.length > {n} || talkinghead.error", timeout=timeout_ms)
    assert page.evaluate("talkinghead.error") is None, page.evaluate("talkinghead.error")
    return page.evaluate(f"talkinghead.runs[{n}]")


def _canvas_frames(page, n: int) -> np.ndarray:
    """The last offline run's frames 0..n-1 as the canvas shows them: uint8 (n, H * W * 4) RGBA."""
    return np.stack([np.frombuffer(base64.b64decode(page.evaluate(f"talkinghead.canvasFrame({k})")), np.uint8)
                     for k in range(n)])


def _python_frames(path, samples, variant: str = "auto") -> np.ndarray:
    """The Python live engine's frames for the same audio: uint8 (n, H, W, 3)."""
    from talkinghead import live

    rt = live.BundleRuntime(path, variant=variant, threads=1)
    eng = live.LiveEngine(rt, mode="preview", batch_size=1, verbose=False)
    return np.stack([f.image for f in eng.frames(live.ArraySource(samples, SR, chunk=SPF))])


def _assert_same_frames(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """The page's RGBA frames (n, H * W * 4) against the engine's (n, H, W, 3): opaque, within PIXEL_MAX / PIXEL_MEAN,
    and the face moves (the comparison is not of still frames). Returns the page's frames as (n, H, W, 4)."""
    got = got.reshape(len(ref), *ref.shape[1:3], 4)
    assert (got[..., 3] == 255).all()
    diff = np.abs(got[..., :3].astype(int) - ref.astype(int))
    assert diff.max() <= PIXEL_MAX and diff.mean() < PIXEL_MEAN, (diff.max(), diff.mean())
    assert (np.abs(np.diff(ref.astype(int), axis=0)).max(axis=(1, 2, 3)) > 10).all()
    return got


# ------------------------------------------------------------------------------------------------------- the page
def test_frames_match_the_python_live_engine(app, bundle, speech):
    _, _, page = app
    short = speech[2]
    report = _play(page, speech[0], "offline")
    n = report["frames"]
    assert n == -(-len(short) // SPF) == 8
    ref = _python_frames(bundle, short)
    _assert_same_frames(_canvas_frames(page, n), ref)

    page.check("#fast-paste")                              # the canvas blends the face in instead of paste.onnx
    try:
        assert _play(page, speech[0], "offline")["frames"] == n
        fast = _canvas_frames(page, n).reshape(ref.shape[:3] + (4,))[..., :3]
    finally:
        page.uncheck("#fast-paste")
    diff = np.abs(fast.astype(int) - ref.astype(int))
    assert diff.max() <= FAST_PASTE_MAX and diff.mean() < FAST_PASTE_MEAN, (diff.max(), diff.mean())


def test_live_mode_keeps_sound_and_picture_in_sync(app, speech, tmp_path):
    _, _, page = app
    r = _play(page, speech[1], "live")
    page.screenshot(path=str(tmp_path / "page.png"))
    delay = r["delay_ms"] / 1000
    assert r["frames"] == -(-_samples(speech[1]) // SPF)
    assert r["rendered"] >= 2 and r["rendered"] + r["dropped"] == r["frames"]
    shown = np.array(r["shown"], float)
    due = shown[:, 0] / FPS + delay                        # frame k is due at input time k/fps + delay
    ready = {int(k): t_ready for k, _, t_ready in r["renders"]}
    on_time = np.array([ready[int(k)] <= d for k, d in zip(shown[:, 0], due)])
    err = shown[:, 1] - due
    assert (err >= -0.003).all(), err                      # never early
    assert (err[on_time] <= SHOWN_S).all(), (err, on_time)  # a frame ready in time is shown at its time
    assert np.median(err[on_time]) <= 1 / FPS, err
    late_by = shown[~on_time, 1] - np.array([ready[int(k)] for k in shown[~on_time, 0]])
    assert (late_by <= LATE_SHOWN_S).all(), late_by        # a late one is shown as soon as it is ready
    assert on_time.sum() >= 1, r                           # the delay covers a render
    assert shown[-1, 0] == r["frames"] - 1                 # the last frame is shown
    assert r["latency_mean_ms"] > 0 and r["achieved_fps"] > 0 and r["renderer"] == "fp32"
    assert "no pocket renderer" in page.inner_text("#warning")     # the full renderer comes with a speed warning
    fps_text = page.inner_text("#fps")
    assert float(fps_text) > 0 and page.inner_text("#latency").endswith("ms")


def _samples(path) -> int:
    import soundfile as sf
    return sf.info(str(path)).frames


def test_a_file_that_is_not_audio(app, tmp_path):
    _, _, page = app
    bad = tmp_path / "notes.txt"
    bad.write_text("this is not a sound\n" * 20)
    page.set_input_files("#file", str(bad))
    page.wait_for_function("talkinghead.error !== null", timeout=20_000)
    msg = page.inner_text("#error")
    assert "notes.txt is not an audio file" in msg and "wav" in msg
    assert page.is_visible("#error")
    page.evaluate("document.getElementById('error').hidden = true; window.talkinghead.error = null")


def test_plain_sha256_for_pages_outside_a_secure_context(app):
    import hashlib

    page = app[2]
    rng = np.random.default_rng(0)
    for n in (0, 3, 55, 56, 63, 64, 65, 1000, 70_001):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert page.evaluate("(b) => talkinghead.sha256Plain(b)", list(data)) == hashlib.sha256(data).hexdigest(), n


def test_microphone_permission_then_the_fake_microphone(app):
    url, ctx, page = app
    page.click("#mic")
    page.wait_for_function("talkinghead.error !== null", timeout=20_000)
    assert "No permission to use the microphone" in page.inner_text("#error")
    ctx.grant_permissions(["microphone"], origin=url.rstrip("/"))
    page.click("#mic")
    page.wait_for_function("talkinghead.app.current?.kind === 'microphone' && talkinghead.app.current.rendered >= 2",
                           timeout=30_000)
    assert page.evaluate("talkinghead.error") is None
    page.click("#stop")
    page.wait_for_function("!talkinghead.app.current.running", timeout=20_000)
    r = page.evaluate("talkinghead.runs.at(-1)")
    assert r["kind"] == "microphone" and r["rendered"] >= 2 and r["latency_mean_ms"] > 0


def _copy(bundle, tmp_path):
    dst = tmp_path / "avatar"
    shutil.copytree(bundle, dst)
    return dst


def test_a_bundle_of_another_format_version(browser, bundle, tmp_path):
    path = _copy(bundle, tmp_path)
    m = json.loads((path / "manifest.json").read_text())
    m["format_version"] = m["format_version"] + 1
    (path / "manifest.json").write_text(json.dumps(m))
    srv, url = _server(path)
    try:
        ctx, page = _open(browser, url, "window.talkinghead && window.talkinghead.loaded === true")
        msg = page.inner_text("#error")
        assert f"format version {m['format_version']}" in msg and f"reads version {m['format_version'] - 1}" in msg
        assert not page.evaluate("talkinghead.ready") and page.is_disabled("#mic")
        ctx.close()
    finally:
        srv.shutdown()


def test_a_model_whose_hash_does_not_match(browser, bundle, tmp_path):
    path = _copy(bundle, tmp_path)
    data = bytearray((path / "audio2motion.onnx").read_bytes())
    data[-1] ^= 0xFF
    (path / "audio2motion.onnx").write_bytes(bytes(data))
    srv, url = _server(path)
    try:
        ctx, page = _open(browser, url)
        msg = page.inner_text("#error")
        assert "audio2motion.onnx" in msg and "does not match its sha256" in msg
        assert not page.evaluate("talkinghead.ready")
        ctx.close()
    finally:
        srv.shutdown()


def test_the_pocket_renderer_is_preferred(browser, bundle, tmp_path):
    from talkinghead import pocket

    path = _copy(bundle, tmp_path)
    shutil.copy(path / "renderer.onnx", path / pocket.POCKET_FILE)     # the same contract: motion -> face
    pocket.register(path, {"file": pocket.POCKET_FILE, "use": "test: the renderer under the pocket's name"})
    srv, url = _server(path)
    try:
        ctx, page = _open(browser, url + "?warmup=0")                   # two renders: nothing is timed here
        assert page.evaluate("talkinghead.error") is None and page.evaluate("talkinghead.renderer") == "pocket"
        assert "no pocket renderer" not in (page.evaluate("talkinghead.warning") or "")
        assert "renderer pocket" in page.inner_text("#bundle-info")
        ctx.close()
    finally:
        srv.shutdown()


@pytest.fixture(scope="module")
def frame_bundle(bundle, tmp_path_factory):
    """The bundle with a small pocket student (the sample size, a painted region, seeded weights that move it) and
    its frame graph (`pocket.export_frame`)."""
    from talkinghead import pocket

    from stage_fixtures import moving_student

    path = _copy(bundle, tmp_path_factory.mktemp("frame"))
    student = moving_student(roi=(192, 128, 224, 256))
    pocket.export_onnx(student, path / pocket.POCKET_FILE)
    pocket.register(path, {"file": pocket.POCKET_FILE, "use": "test: a seeded sample-size student"})
    pocket.export_frame(path, student)
    return path


def test_the_frame_graph_page_matches_the_python_engine_and_skips_the_two_models(browser, frame_bundle, speech):
    srv, url = _server(frame_bundle)
    try:
        ctx, page = _open(browser, url)
        assert page.evaluate("talkinghead.error") is None, page.evaluate("talkinghead.error")
        assert page.evaluate("talkinghead.path") == "frame" and "frame graph" in page.inner_text("#bundle-info")
        n = _play(page, speech[0], "offline")["frames"]
        got = _canvas_frames(page, n)
        ctx.close()
    finally:
        srv.shutdown()
    fetched = {p.rsplit("/", 1)[-1] for p in srv.requests if p.startswith("/bundle/")}
    assert {"pocket_frame.onnx", "pocket_background.png", "audio2motion.onnx", "features.onnx"} <= fetched, fetched
    assert not fetched & {"pocket.onnx", "paste.onnx", "renderer.onnx"}, fetched
    ref = _python_frames(frame_bundle, speech[2], "pocket")
    assert n == len(ref) == 8
    got = _assert_same_frames(got, ref)                    # the face moves inside the box
    y0, x0, h, w = json.loads((frame_bundle / "manifest.json").read_text())[
        "models"]["renderer"]["variants"]["pocket"]["frame"]["box"]
    outside = np.ones(ref.shape[1:3], bool)
    outside[y0:y0 + h, x0:x0 + w] = False
    assert (got[:, outside, :3] == ref[:, outside]).all()        # the background, drawn once, is all the rest


@pytest.mark.parametrize("fault", ["hash", "box"])
def test_a_frame_graph_that_does_not_fit_says_so(browser, frame_bundle, tmp_path, fault):
    path = _copy(frame_bundle, tmp_path)
    if fault == "hash":
        data = bytearray((path / "pocket_frame.onnx").read_bytes())
        data[-1] ^= 0xFF
        (path / "pocket_frame.onnx").write_bytes(bytes(data))
        expected = "pocket_frame.onnx (the frame graph) does not match its sha256"
    else:                                                   # a box that leaves the frame
        m = json.loads((path / "manifest.json").read_text())
        m["models"]["renderer"]["variants"]["pocket"]["frame"]["box"][0] = 10_000
        (path / "manifest.json").write_text(json.dumps(m))
        expected = "pocket frame graph entry is not usable"
    srv, url = _server(path)
    try:
        ctx, page = _open(browser, url)
        msg = page.inner_text("#error")
        assert expected in msg and "export the bundle again" in msg, msg
        assert not page.evaluate("talkinghead.ready")
        ctx.close()
    finally:
        srv.shutdown()


def test_webgpu_renders_the_frame_graph_as_the_python_engine(webgpu_browser, frame_bundle, speech):
    # the page on onnxruntime-web's WebGPU backend (ops it lacks fall back to wasm inside the same session): the
    # same frames as the Python engine, as on wasm
    srv, url = _server(frame_bundle)
    try:
        ctx, page = _open(webgpu_browser, url)
        assert page.evaluate("talkinghead.error") is None, page.evaluate("talkinghead.error")
        if page.evaluate("talkinghead.ep") != "webgpu":
            pytest.skip("this Chromium offers no WebGPU adapter, not even SwiftShader's")
        assert "webgpu" in page.inner_text("#bundle-info") and page.evaluate("talkinghead.path") == "frame"
        report = _play(page, speech[0], "offline", timeout_ms=300_000)
        got = _canvas_frames(page, report["frames"])
        ctx.close()
    finally:
        srv.shutdown()
    ref = _python_frames(frame_bundle, speech[2], "pocket")
    assert report["frames"] == len(ref) == 8 and report["ep"] == "webgpu"
    _assert_same_frames(got, ref)


def test_the_full_renderer_stays_on_wasm_where_webgpu_is_offered(webgpu_browser, bundle):
    # onnxruntime-web 1.30's WebGPU cannot run the full renderer (3-D AveragePool in NHWC; in NCHW its frames were
    # off by up to 111 grey levels here): the page keeps it on wasm, and says so when WebGPU is asked for
    srv, url = _server(bundle)
    try:
        ctx, page = _open(webgpu_browser, url + "?ep=webgpu")
        assert page.evaluate("talkinghead.error") is None, page.evaluate("talkinghead.error")
        assert page.evaluate("talkinghead.ep") == "wasm"
        assert "only the pocket renderer's frame graph runs on it" in page.inner_text("#warning")
        ctx.close()
    finally:
        srv.shutdown()


# ------------------------------------------------------------------------------------------------------- the server
def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, b"", dict(e.headers)


def test_server_serves_only_the_page_the_listed_files_and_the_runtime(bundle, tmp_path):
    from talkinghead import bake

    path = _copy(bundle, tmp_path)
    m = json.loads((path / "manifest.json").read_text())
    del m["models"]["features"]                             # as a bundle exported before features.onnx
    (path / "manifest.json").write_text(json.dumps(m))
    (path / "secret.txt").write_text("not listed")
    ort = tmp_path / "ort"
    ort.mkdir()
    (ort / serve.ORT_ENTRY).write_text("export const x = 1;")
    (ort / "package.json").write_text("{}")
    srv = serve.make_server(path, "127.0.0.1", 0, ort)
    url = serve.start_in_thread(srv)
    try:
        status, body, headers = _get(url)
        assert status == 200 and b"app.js" in body and headers["Cross-Origin-Opener-Policy"] == "same-origin"
        assert _get(url + "bundle/portrait.png")[1] == (path / "portrait.png").read_bytes()
        assert _get(url + "ort/" + serve.ORT_ENTRY)[2]["Content-Type"] == "text/javascript"
        for bad in ("bundle/secret.txt", "bundle/..%2Fsecret.txt", "bundle/../avatar/secret.txt", "ort/package.json",
                    "../avatar/manifest.json", "bundle/", "web/app.js", "serve.py"):
            assert _get(url + bad)[0] == 404, bad
        cfg = json.loads(_get(url + "config.json")[1])
        assert cfg["format_version"] == bake.FORMAT_VERSION and cfg["ort"] == "/ort/" + serve.ORT_ENTRY
        assert cfg["features_fallback"] == "/generated/features.onnx"
        assert cfg["idle_first"] == int(np.random.default_rng(0).integers(m["models"]["audio2motion"]["idle"]["frames"]))
        assert _get(url + "generated/features.onnx")[1][:2] == b"\x08\x08"    # an ONNX model (ir_version 8)
    finally:
        srv.shutdown()


def test_idle_start_matches_numpy():
    cfg = serve.page_config({"models": {"audio2motion": {"idle": {"frames": 90, "file": "idle.npy"}}}}, seed=0)
    assert cfg["idle_first"] == int(np.random.default_rng(0).integers(90))


def test_cli_says_what_is_missing(bundle, tmp_path):
    import os

    env = {**os.environ, "TALKINGHEAD_ORT_WEB": str(tmp_path / "nothing"), "XDG_CACHE_HOME": str(tmp_path)}

    def serve_cli(path, **extra):
        return subprocess.run([sys.executable, "-m", "talkinghead", "serve", str(path), "--port", "0"],
                              env={**env, **extra}, capture_output=True, text=True, timeout=60)

    r = serve_cli(bundle)                                   # TALKINGHEAD_ORT_WEB names a folder without it
    assert r.returncode == 2 and "no onnxruntime-web here" in r.stderr and "--install-web-runtime" in r.stderr
    r = serve_cli(bundle, TALKINGHEAD_ORT_WEB="")           # nothing in the cache either
    assert r.returncode == 2 and "onnxruntime-web is not installed" in r.stderr
    r = serve_cli(tmp_path)                                 # a folder that is not a bundle
    assert r.returncode == 2 and "not an avatar bundle" in r.stderr and r.stderr.count("\n") == 1
