"""`python -m talkinghead serve [BUNDLE]`: the avatar in a web page, everything served from this machine.

The page (`talkinghead/web/`: index.html, app.js, style.css, capture-worklet.js) loads the bundle's ONNX models with
onnxruntime-web and runs the live engine's loop in the browser (see app.js and `talkinghead.live`): microphone or an
audio file in, the avatar speaking in a canvas, in sync with the sound. Nothing is fetched from the internet.

What is served (and nothing else from disk):

    /                      the page (talkinghead/web/*)
    /config.json           what the page needs from Python: the bundle format version it reads, onnxruntime-web's
                           entry point, the idle loop's start (numpy's `default_rng(seed).integers(frames)`)
    /bundle/manifest.json  the bundle's manifest, and /bundle/NAME for each NAME listed in its `files`
    /ort/NAME              onnxruntime-web's dist files (ort*.mjs, *.wasm), pinned to ORT_WEB_VERSION
    /generated/features.onnx  only for a bundle exported before features.onnx existed: the graph built from its
                           manifest's audio feature parameters (talkinghead.features_onnx)

onnxruntime-web comes from npm at a pinned version. Where it is looked for: `--ort-web DIR` or `$TALKINGHEAD_ORT_WEB`
(its dist folder, the package folder, or an npm prefix), then the cache `~/.cache/talkinghead/web/` (or
`$XDG_CACHE_HOME/talkinghead/web/`), where `python -m talkinghead serve --install-web-runtime` puts it with
`npm install --prefix`. Responses carry COOP/COEP headers so the page is cross-origin isolated (multi-threaded wasm).
"""
from __future__ import annotations

import argparse
import collections
import json
import mimetypes
import os
import re
import shutil
import subprocess
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .errors import BundleError, TalkingHeadError

ORT_WEB_VERSION = "1.30.0"
ORT_ENTRY = "ort.min.mjs"                  # onnxruntime-web with the WebGPU (JSEP) and wasm backends
WEB_DIR = Path(__file__).with_name("web")
REQUEST_LOG = 1000                         # paths remembered by make_server's `requests`
_ORT_NAME = re.compile(r"^ort[\w.-]*\.(mjs|js|wasm)$")
_TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm", ".json": "application/json",
          ".onnx": "application/octet-stream", ".npy": "application/octet-stream", ".html": "text/html; charset=utf-8",
          ".css": "text/css", ".png": "image/png"}


# ------------------------------------------------------------------------------------------------ onnxruntime-web
def web_cache_dir() -> Path:
    """Where `--install-web-runtime` installs onnxruntime-web: $XDG_CACHE_HOME/talkinghead/web (~/.cache/...)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "talkinghead" / "web" / f"onnxruntime-web-{ORT_WEB_VERSION}"


def _dist_in(folder: Path) -> Path | None:
    for d in (folder, folder / "dist", folder / "node_modules" / "onnxruntime-web" / "dist"):
        if (d / ORT_ENTRY).is_file():
            return d
    return None


def find_ort_web(explicit=None) -> Path | None:
    """onnxruntime-web's dist folder: `explicit`, $TALKINGHEAD_ORT_WEB, then the cache; None when not installed."""
    for cand in (explicit, os.environ.get("TALKINGHEAD_ORT_WEB"), web_cache_dir()):
        if cand:
            d = _dist_in(Path(cand).expanduser())
            if d is not None:
                return d
            if cand is explicit or cand == os.environ.get("TALKINGHEAD_ORT_WEB"):
                raise TalkingHeadError(f"{cand}: no onnxruntime-web here ({ORT_ENTRY} not found in it, its dist/ or "
                                       "node_modules/onnxruntime-web/dist/); run `python -m talkinghead serve "
                                       "--install-web-runtime` or point TALKINGHEAD_ORT_WEB at that package.")
    return None


def ort_web_version(dist: Path) -> str | None:
    """The version in the package.json beside `dist` (None when it cannot be read)."""
    try:
        return json.loads((dist.parent / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def install_web_runtime(prefix=None, force: bool = False) -> Path:
    """`npm install --prefix <cache> onnxruntime-web@ORT_WEB_VERSION` -> its dist folder (needs Node.js's npm).

    Nothing is done when that version is already there (unless `force`)."""
    prefix = Path(prefix) if prefix else web_cache_dir()
    have = _dist_in(prefix)
    if have is not None and ort_web_version(have) == ORT_WEB_VERSION and not force:
        return have
    npm = shutil.which("npm")
    if npm is None:
        raise TalkingHeadError("installing onnxruntime-web needs npm (Node.js), which is not on PATH: install Node.js "
                               f"(https://nodejs.org or your package manager), or download onnxruntime-web@"
                               f"{ORT_WEB_VERSION} elsewhere and point TALKINGHEAD_ORT_WEB at it.")
    prefix.mkdir(parents=True, exist_ok=True)
    print(f"installing onnxruntime-web@{ORT_WEB_VERSION} into {prefix} (npm) ...")
    r = subprocess.run([npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--ignore-scripts",
                        f"onnxruntime-web@{ORT_WEB_VERSION}"], capture_output=True, text=True)
    dist = _dist_in(prefix)
    if r.returncode != 0 or dist is None:
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
        raise TalkingHeadError(f"{prefix}: npm could not install onnxruntime-web@{ORT_WEB_VERSION} ({tail[0]}); "
                               "check the network or the npm registry setting, then run it again.")
    return dist


# ------------------------------------------------------------------------------------------------------- the bundle
def read_manifest(bundle: Path) -> dict:
    """The manifest as the page will see it; only its shape is checked here (the page reports a wrong version)."""
    mf = bundle / "manifest.json"
    if not mf.is_file():
        raise BundleError(f"{bundle}: not an avatar bundle (no manifest.json); export one first "
                          "(notebooks/05_export.ipynb or `python -m talkinghead export`).")
    try:
        manifest = json.loads(mf.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise BundleError(f"{mf}: cannot be read as JSON ({type(e).__name__}); export the bundle again.") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise BundleError(f"{mf}: lists no files (not an avatar manifest); export the bundle again.")
    return manifest


def _format_version() -> int:
    from .bundle import FORMAT_VERSION

    return FORMAT_VERSION


def _plain(name: str) -> bool:
    return name not in ("", ".", "..") and not any(c in name for c in "/\\:\0") and name.strip() == name


def page_config(manifest: dict, seed: int = 0) -> dict:
    """/config.json: the format version this talkinghead reads, where onnxruntime-web is, the idle loop's start."""
    import numpy as np

    from . import __version__
    a2m = (manifest.get("models") or {}).get("audio2motion") or {}
    idle = a2m.get("idle") if isinstance(a2m.get("idle"), dict) else None
    frames = int(idle.get("frames", 0)) if idle else 0
    first = int(np.random.default_rng(seed).integers(frames)) if frames > 0 else 0
    has_features = "features" in (manifest.get("models") or {})
    return {"talkinghead": __version__, "format_version": _format_version(), "ort": f"/ort/{ORT_ENTRY}",
            "ort_version": ORT_WEB_VERSION, "bundle": "/bundle/", "idle_seed": seed, "idle_first": first,
            "features_fallback": None if has_features else "/generated/features.onnx"}


# --------------------------------------------------------------------------------------------------------- the server
class Handler(BaseHTTPRequestHandler):
    """GET/HEAD of the page, the bundle's listed files and onnxruntime-web's dist; 404 for anything else."""

    server_version = "talkinghead"
    bundle: Path
    ort_dist: Path | None
    quiet: bool = True

    def log_message(self, fmt, *args):          # noqa: D401 - quiet unless asked
        if not self.quiet:
            super().log_message(fmt, *args)

    def do_HEAD(self):
        self._serve(head=True)

    def do_GET(self):
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        log = getattr(self.server, "requests", None)
        if log is not None:
            log.append(path)
        try:
            found = self._route(path)
        except TalkingHeadError as e:
            return self._send(HTTPStatus.INTERNAL_SERVER_ERROR, str(e).encode(), "text/plain; charset=utf-8", head)
        if found is None:
            return self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain", head)
        body, ctype = found
        self._send(HTTPStatus.OK, body, ctype, head)

    def _route(self, path: str):
        """path -> (bytes or a file Path, content type), or None."""
        if path in ("/", "/index.html"):
            path = "/index.html"
        name = path.rsplit("/", 1)[-1]
        folder = path[: len(path) - len(name)]
        if folder == "/" and name == "config.json":
            return json.dumps(page_config(read_manifest(self.bundle))).encode(), _TYPES[".json"]
        if folder == "/" and _plain(name) and (WEB_DIR / name).is_file():
            return WEB_DIR / name, _ctype(name)
        if folder == "/bundle/" and _plain(name):
            listed = name == "manifest.json" or name in read_manifest(self.bundle)["files"]
            f = self.bundle / name
            if listed and f.is_file() and not f.is_symlink():
                return f, _ctype(name)
        if folder == "/ort/" and self.ort_dist is not None and _ORT_NAME.match(name) and (self.ort_dist / name).is_file():
            return self.ort_dist / name, _ctype(name)
        if path == "/generated/features.onnx":
            return _fallback_features(read_manifest(self.bundle)), _TYPES[".onnx"]
        return None

    def _send(self, status, body, ctype: str, head: bool) -> None:
        size = body.stat().st_size if isinstance(body, Path) else len(body)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(size))
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")       # crossOriginIsolated: wasm threads
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if head:
            return
        try:
            if isinstance(body, Path):
                with open(body, "rb") as fh:
                    shutil.copyfileobj(fh, self.wfile, 1 << 20)
            else:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


def _ctype(name: str) -> str:
    ext = Path(name).suffix.lower()
    return _TYPES.get(ext) or mimetypes.guess_type(name)[0] or "application/octet-stream"


_FALLBACK: dict = {}


def _fallback_features(manifest: dict) -> bytes:
    """features.onnx for a bundle exported without one, built from its manifest's feature parameters (cached)."""
    from .audio import FeatureParams
    from .features_onnx import build_model

    a2m = (manifest.get("models") or {}).get("audio2motion") or {}
    params = FeatureParams.from_dict(a2m.get("feature_params") or manifest.get("audio_features") or {})
    if params not in _FALLBACK:
        _FALLBACK[params] = build_model(params).SerializeToString()
    return _FALLBACK[params]


def make_server(bundle, host: str = "127.0.0.1", port: int = 8000, ort_dist=None, quiet: bool = True):
    """A ThreadingHTTPServer for `bundle` (not started: call `serve_forever`, or `start_in_thread`); its `requests`
    holds the paths of the last REQUEST_LOG requests (the tests check what the page fetched)."""
    bundle = Path(bundle)
    read_manifest(bundle)
    handler = type("BundleHandler", (Handler,), {"bundle": bundle, "ort_dist": ort_dist, "quiet": quiet})
    try:
        server = ThreadingHTTPServer((host, int(port)), handler)
    except OSError as e:
        raise TalkingHeadError(f"cannot listen on {host}:{port} ({e.strerror or e}); pick another --port "
                               "(0 = any free one).") from None
    server.requests = collections.deque(maxlen=REQUEST_LOG)
    return server


def start_in_thread(server) -> str:
    """Serve in a daemon thread; returns the page's address."""
    threading.Thread(target=server.serve_forever, daemon=True, name="talkinghead-serve").start()
    return url_of(server)


def start_in_background(bundle, port: int = 0, host: str = "127.0.0.1", ort_dist=None):
    """Serve `bundle`'s page from a daemon thread (notebook 06) -> (the page's address, stop()).

    `port` 0 takes any free one. onnxruntime-web is `ort_dist`, else found as the command line finds it; when it is
    not installed the page is still served and says so (`talkinghead.show.live.show_page` tells how to install it).
    stop() shuts the server and closes its socket; a kernel that ends ends the thread too."""
    if ort_dist is None:
        try:
            ort_dist = find_ort_web()
        except TalkingHeadError:                # a wrong $TALKINGHEAD_ORT_WEB: show_page says what is wrong
            ort_dist = None
    server = make_server(bundle, host, port, ort_dist)
    url = start_in_thread(server)

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return url, stop


def url_of(server) -> str:
    host, port = server.server_address[:2]
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/"


# ------------------------------------------------------------------------------------------------- headless checks
# Chromium flags for the tests and benchmarks/bench_browser.py: runs as root, no network (every outside host is
# unreachable), no GPU, sound allowed without a click.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update", "--disable-default-apps",
                 "--autoplay-policy=no-user-gesture-required", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


def find_chromium() -> str | None:
    """A Chromium to drive with Playwright: $TALKINGHEAD_CHROMIUM, then chromium / chromium-browser on PATH."""
    for cand in (os.environ.get("TALKINGHEAD_CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser")):
        if cand and Path(cand).is_file():
            return cand
    return None


# ------------------------------------------------------------------------------------------------- command line
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", nargs="?", default=None, help="exported avatar bundle (default: WORKSPACE/avatar)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1, this machine only; the microphone needs "
                        "localhost or https)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 = any free port)")
    p.add_argument("--ort-web", default=None,
                   help=f"onnxruntime-web@{ORT_WEB_VERSION} folder (default: $TALKINGHEAD_ORT_WEB, then the cache)")
    p.add_argument("--install-web-runtime", action="store_true",
                   help=f"npm install onnxruntime-web@{ORT_WEB_VERSION} into the cache ({web_cache_dir()}) and exit")
    p.add_argument("--verbose", action="store_true", help="log every request")


def run_cli(args) -> int:
    """The `serve` subcommand."""
    if args.install_web_runtime:
        dist = install_web_runtime()
        print(f"onnxruntime-web {ort_web_version(dist) or ORT_WEB_VERSION} is in {dist}")
        return 0
    from .paths import avatar_dir

    bundle = Path(args.bundle) if args.bundle else avatar_dir()
    manifest = read_manifest(bundle)
    dist = find_ort_web(args.ort_web)
    if dist is None:
        raise TalkingHeadError(f"onnxruntime-web is not installed (looked in $TALKINGHEAD_ORT_WEB and {web_cache_dir()}); "
                               "run `python -m talkinghead serve --install-web-runtime` once (needs npm).")
    version = ort_web_version(dist)
    if version and version != ORT_WEB_VERSION:
        print(f"note: {dist} holds onnxruntime-web {version}; this page is tested with {ORT_WEB_VERSION}.")
    if manifest.get("format_version") != _format_version():
        print(f"note: {bundle / 'manifest.json'} has format version {manifest.get('format_version')}, this "
              f"talkinghead reads {_format_version()}: the page will say so.")
    server = make_server(bundle, args.host, args.port, dist, quiet=not args.verbose)
    print(f"serving the avatar {bundle} at {url_of(server)}  (onnxruntime-web {version or '?'} from {dist}; "
          "Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped.")
    finally:
        server.server_close()
    return 0


def _main() -> int:                      # `python -m talkinghead.serve` works too
    p = argparse.ArgumentParser(prog="python -m talkinghead serve", description=__doc__.splitlines()[0])
    add_arguments(p)
    try:
        return run_cli(p.parse_args())
    except TalkingHeadError as e:
        print(f"error: {e}")
        return 2


if __name__ == "__main__":
    raise SystemExit(_main())
