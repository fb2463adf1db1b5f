"""Notebook 06 (notebooks/06_live_preview.ipynb): the speech to animate, the live run at wall-clock pace, the timing
plots and tables, the finished video, and the same avatar in a browser page.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .. import live, serve, tts, video
from ..errors import TalkingHeadError
from ..layout import SAMPLE_RATE


def speech(text: str, audio_file=None, language: str | None = None, wav_path=None) -> tuple[np.ndarray, int, str]:
    """What the avatar says: `audio_file` (any format, rate and channels, read at 16 kHz mono) when given, else `text`
    synthesised (`live.synthesize`: Mandarin for Han characters, English otherwise, or `language`). With `wav_path`
    the samples are also written there. Returns (float32 samples, 16000, a description of what is spoken)."""
    if audio_file:
        samples, spoken = video.load_audio(audio_file), str(audio_file)
    else:
        samples, spoken = live.synthesize(text, language)[0], text
    if wav_path is not None:
        tts.write_wav(wav_path, samples, SAMPLE_RATE)
    return samples, SAMPLE_RATE, spoken


def run_live(runtime, samples: np.ndarray, sr: int, emotion=None, enabled: bool = True):
    """Play the speech through the engine at wall-clock pace (`mode="realtime"`: late frames are dropped), showing
    frames in the notebook (`live.NotebookSink`). Returns the `TimingReport`, or None when `enabled` is False."""
    if not enabled:
        print("REALTIME is False: skipping the live run")
        return None
    engine = live.LiveEngine(runtime, emotion=emotion, mode="realtime", sink=live.NotebookSink())
    report = engine.run(live.ArraySource(samples, sr, realtime=True))
    print(report.summary())
    return report


def timing_tables(*reports) -> str:
    """Markdown: each report's timing table under its mode (None reports are skipped)."""
    return "\n\n".join(f"**{r.mode}**\n\n{r.table()}" for r in reports if r is not None)


def plot_timings(*reports):
    """One bar chart per report (None skipped): where the busy time goes. Returns the figure."""
    import matplotlib.pyplot as plt

    reports = [r for r in reports if r is not None]
    fig, axes = plt.subplots(1, len(reports), figsize=(6 * len(reports), 2.8), squeeze=False)
    for r, ax in zip(reports, axes[0]):
        r.plot(ax=ax)
    fig.tight_layout()
    return fig


def video_report(mp4_path, embed_max_mb: float = 20.0) -> tuple[str, bool]:
    """(text: the video's and sound's durations and size, or that there is none; whether it is small enough to embed
    in the notebook)."""
    if mp4_path is None or not Path(mp4_path).is_file():
        return "no frames (empty audio): no video was written", False
    v_s, a_s = video.durations(mp4_path)
    mb = Path(mp4_path).stat().st_size / 1e6
    text = f"{mp4_path}: video {v_s:.3f} s, audio {a_s:.3f} s, {mb:.2f} MB"
    return (text, True) if mb < embed_max_mb else (text + " (too large to embed; open the file)", False)


# ------------------------------------------------------------------------------------------------ the browser page
def web_runtime_problem() -> str | None:
    """None when onnxruntime-web is installed where `serve` looks; else one sentence saying how to get it."""
    try:
        if serve.find_ort_web() is not None:
            return None
    except TalkingHeadError as e:               # $TALKINGHEAD_ORT_WEB names a folder without it
        return str(e)
    return ("onnxruntime-web is not installed, so the page cannot load the models yet: run `python -m talkinghead "
            f"serve --install-web-runtime` once (npm, onnxruntime-web@{serve.ORT_WEB_VERSION}), then this cell again.")


def page_text(url: str, problem: str | None = None, where: str = "python") -> str:
    """What `show_page` says: the page's address, where to open it, and `problem` (`web_runtime_problem`) if any."""
    hint = {"colab": "the Colab machine's; below through Colab's port proxy",
            "jupyter": "below, or open it in Chrome, Edge or Firefox on the kernel's machine"}
    text = f"the avatar's page: {url}  ({hint.get(where, 'open it in Chrome, Edge or Firefox on this machine')})"
    return text if problem is None else f"{text}\n{problem}"


def _frontend() -> str:
    """'colab', 'jupyter' (a notebook kernel) or 'python'."""
    if "google.colab" in sys.modules:
        return "colab"
    shell = sys.modules["IPython"].get_ipython() if "IPython" in sys.modules else None
    return "jupyter" if getattr(shell, "kernel", None) is not None else "python"


def show_page(url: str, height: int = 760) -> str:
    """Print the page's address (`serve.start_in_background`) and show the page: in Colab through its port proxy (a
    link that opens it in a tab, where the microphone can be allowed, and the page in the output), in Jupyter an
    IFrame, in plain Python nothing more. Without onnxruntime-web it says how to get it instead. Returns the text."""
    problem, where = web_runtime_problem(), _frontend()
    text = page_text(url, problem, where)
    print(text)
    if where == "python" or problem is not None:
        return text
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    if where == "colab":
        from google.colab import output

        output.serve_kernel_port_as_window(port, path="/", anchor_text="open the avatar's page in a new tab")
        output.serve_kernel_port_as_iframe(port, path="/", height=height)
    else:
        from IPython.display import IFrame, display

        display(IFrame(url, "100%", height, extras=['allow="microphone; autoplay"']))
    return text
