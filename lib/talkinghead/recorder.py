"""Record yourself in the notebook: the corpus script as a teleprompter, line by line, while the webcam and the
microphone record (notebook 03).

    teleprompter_lines()       the script to read: notebook 01's `index.json` when it exists, else the default script
    teleprompter_html(lines)   the lines as a page that shows one at a time (Next / Back, or the space bar)
    record(lines)              in Colab: the browser records through MediaRecorder and hands the video to Python
                               (`google.colab.output.eval_js`), saved and checked as `inputs/recording.webm`;
                               in Jupyter: the same recorder, ending in a download link (then pick the file in the
                               upload box, or copy it into the workspace's `inputs/`); elsewhere: what to do instead

The saving and checking half is `talkinghead.inputs.save_recording` (no browser needed, tested).
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Sequence

from . import corpus, inputs, paths
from .corpus import Line
from .errors import MediaError

PROMPTER_ID = "th-prompter"
CHUNK_CHARS = 1 << 20          # base64 characters fetched from the browser per eval_js call
VIDEO_BITS_PER_S = 1_000_000   # ~8 MB a minute: a 3-minute script stays a comfortable transfer


def teleprompter_lines(index_path=None) -> list[Line]:
    """The lines to read, in script order: those of notebook 01's `index.json` (default: the workspace's), else the
    default script (`corpus.select_lines` on the package's pool, as `pipeline.build_corpus` selects it)."""
    path = Path(index_path) if index_path else paths.corpus_dir() / "index.json"
    if path.is_file():
        return corpus.lines_from_index(corpus.load_index(path))
    return corpus.select_lines(corpus.load_pool())


def _reading(line: Line) -> str:
    if line.language != "zh":
        return ""
    try:
        return corpus.pinyin_marks(line)
    except Exception:   # a reading is a help for the speaker, never a reason to stop
        return ""


def teleprompter_html(lines: Sequence[Line], element_id: str = PROMPTER_ID) -> str:
    """The script as HTML: every line in order (large text, its pinyin, the acting cue, "k / N"); only the current
    one is shown, and Next / Back (or the space bar) step through them."""
    rows = []
    for k, line in enumerate(lines):
        cue = line.acting_cue
        rows.append(
            f'<div class="th-line" data-i="{k}" style="display:{"block" if k == 0 else "none"}">'
            f'<div style="font-size:13px;color:#888">{k + 1} / {len(lines)} · {html.escape(line.emotion)}</div>'
            f'<div style="font-size:30px;line-height:1.3;margin:6px 0">{html.escape(line.text)}</div>'
            f'<div style="font-size:15px;color:#555">{html.escape(_reading(line))}</div>'
            f'<div style="font-size:14px;color:#a05a00">{html.escape(cue)}</div></div>')
    return (f'<div id="{element_id}" tabindex="0" style="font-family:sans-serif;padding:12px;border:1px solid #ccc;'
            f'border-radius:8px;max-width:720px;min-height:130px">{"".join(rows)}'
            f'<div style="margin-top:10px"><button class="th-back">Back</button> <button class="th-next">Next '
            f'(space)</button></div></div>')


_PROMPTER_JS = """
function thPrompter(root) {
  const lines = root.querySelectorAll('.th-line');
  let i = 0;
  const show = (k) => { i = Math.max(0, Math.min(lines.length - 1, k));
    lines.forEach((el, j) => { el.style.display = j === i ? 'block' : 'none'; }); };
  root.querySelector('.th-next').onclick = () => show(i + 1);
  root.querySelector('.th-back').onclick = () => show(i - 1);
  root.addEventListener('keydown', (e) => { if (e.code === 'Space') { e.preventDefault(); show(i + 1); } });
  root.focus();
  return show;
}
"""

_RECORDER_JS = """
async function thRecord(prompterHtml, bitsPerSecond, download) {
  const box = document.createElement('div');
  box.innerHTML = prompterHtml;
  const video = document.createElement('video');
  video.muted = true; video.autoplay = true; video.playsInline = true; video.style.width = '320px';
  const start = document.createElement('button'); start.textContent = 'Start recording'; start.disabled = true;
  const stop = document.createElement('button'); stop.textContent = 'Stop'; stop.disabled = true;
  const status = document.createElement('div');
  const host = (typeof element !== 'undefined' && element && element.appendChild) ? element : document.body;
  [video, document.createElement('br'), start, stop, status, box].forEach((el) => host.appendChild(el));
  const prompter = box.firstElementChild;
  thPrompter(prompter);
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({audio: true, video: {width: 640, height: 480}});
  } catch (e) {
    status.textContent = 'no camera or microphone: ' + e.message;
    return {error: e.name + ': ' + e.message};
  }
  video.srcObject = stream;
  const mime = ['video/webm;codecs=vp8,opus', 'video/webm', 'video/mp4'].find((m) => MediaRecorder.isTypeSupported(m));
  const rec = new MediaRecorder(stream, {mimeType: mime, videoBitsPerSecond: bitsPerSecond});
  const parts = [];
  rec.ondataavailable = (e) => { if (e.data.size) parts.push(e.data); };
  const started = new Promise((resolve) => { start.onclick = resolve; });
  start.disabled = false;   // only once the camera and microphone are ready
  await started;
  rec.start(1000); start.disabled = true; stop.disabled = false;
  prompter.focus();   // the space bar steps the lines, never presses Stop
  status.textContent = 'recording: read each line, pause a second, press space for the next one';
  await new Promise((resolve) => { stop.onclick = resolve; });
  await new Promise((resolve) => { rec.onstop = resolve; rec.stop(); });
  stream.getTracks().forEach((t) => t.stop());
  const blob = new Blob(parts, {type: rec.mimeType});
  if (download) {
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob); a.download = 'recording.webm';
    a.textContent = 'download the recording (' + (blob.size / 1e6).toFixed(1) + ' MB)';
    status.textContent = ''; status.appendChild(a);
    return {size: blob.size, mime: rec.mimeType};
  }
  const dataUrl = await new Promise((resolve) => { const r = new FileReader(); r.onload = () => resolve(r.result);
    r.readAsDataURL(blob); });
  window.thRecording = dataUrl;
  status.textContent = 'sending the recording to Python (' + (blob.size / 1e6).toFixed(1) + ' MB) ...';
  return {size: blob.size, mime: rec.mimeType, chars: dataUrl.length};
}
"""


def recorder_js() -> str:
    """The browser side: `thPrompter` (the teleprompter's keys) and `thRecord(prompterHtml, bitsPerSecond, download)`,
    which records webcam and microphone with MediaRecorder between Start and Stop; it keeps the video as a data URL in
    `window.thRecording` (Colab) or offers it as a download (`download` true, Jupyter)."""
    return _PROMPTER_JS + _RECORDER_JS


def _call(prompter: str, download: bool) -> str:
    return f"thRecord({json.dumps(prompter)}, {VIDEO_BITS_PER_S}, {json.dumps(download)})"


def record(lines: Sequence[Line] | None = None, enabled: bool = True, min_s: float = inputs.MIN_RECORDING_S):
    """Record yourself reading `lines` (default `teleprompter_lines()`) as a teleprompter shows them (notebook 03).

    Colab: waits for Start and Stop, then saves and checks the video (`inputs.save_recording`) and returns its path.
    Jupyter: shows the recorder, which ends in a download link, and returns None (nothing waits). Elsewhere, or with
    `enabled` False: prints what to do instead and returns None."""
    if not enabled:
        print("RECORD = False: no recorder (set RECORD = True to record yourself here, or film the script on a phone)")
        return None
    lines = list(lines) if lines is not None else teleprompter_lines()
    prompter = teleprompter_html(lines)
    if inputs.in_colab():
        return _record_in_colab(prompter, min_s)
    if inputs._ipython() is None:
        print("recording needs a notebook in a browser; film the script (data/corpus/script.md) on a phone instead "
              "and pass it as VIDEO")
        return None
    from IPython.display import Javascript, display

    display(Javascript(recorder_js() + _call(prompter, download=True) + ";"))
    print("allow the camera and microphone, press Start, read each line, then Stop and download the file; pick it in "
          f"the upload box above (or copy it to {paths.inputs_dir()}) and run the next cell")
    return None


def _record_in_colab(prompter: str, min_s: float) -> Path:
    from google.colab.output import eval_js
    from IPython.display import Javascript, display

    display(Javascript(recorder_js()))
    meta = eval_js(_call(prompter, download=False))
    if meta.get("error"):
        raise MediaError(f"the browser gave no camera or microphone ({meta['error']}); allow both for this page and "
                         "run the cell again, or film the script on a phone and upload it.")
    n = int(meta["chars"])
    data = "".join(eval_js(f"window.thRecording.slice({i}, {i + CHUNK_CHARS})") for i in range(0, n, CHUNK_CHARS))
    eval_js("delete window.thRecording", ignore_result=True)
    path = inputs.save_recording(data, min_s)
    print(f"saved your recording ({meta['size'] / 1e6:.1f} MB, {meta['mime']}) as {path}")
    return path
