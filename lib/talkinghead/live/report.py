"""What a live stream reports: frames, the stream's facts for sinks, and the timing report (notebook 06).

`TimingReport` gives the achieved frame rate, frames rendered and dropped, the latency from an audio sample
entering to its frame leaving (the sample that completes the frame; mean and p95, ms), and the share of busy time
in each stage (`STAGES`: features, a2m, renderer, paste, sink).
"""
from __future__ import annotations

import dataclasses

import numpy as np

STAGES = ("features", "a2m", "renderer", "paste", "sink")


@dataclasses.dataclass
class Frame:
    """One output frame: `index` k (time k/fps), `image` uint8 (H, W, 3) RGB, `repeated` (True: a dropped frame,
    the last rendered image shown again), `latency_s` (audio sample in -> frame out; None for repeats)."""
    index: int
    image: np.ndarray
    time_s: float
    repeated: bool = False
    latency_s: float | None = None


@dataclasses.dataclass
class StreamInfo:
    """What sinks learn at the start of a stream."""
    fps: int
    width: int
    height: int
    sample_rate: int
    mode: str
    lookahead_frames: int
    delay_s: float


@dataclasses.dataclass
class TimingReport:
    """How a stream went. Times in seconds unless named _ms.

    achieved_fps: new (rendered) frames per second of wall-clock time (realtime: as displayed; preview: the
    rendering throughput); render_fps: the rate renderer + paste alone could sustain; realtime_factor: the whole
    pipeline's busy-time throughput over the target fps (>= 1: keeps up). latency: from the audio sample that
    completes a frame entering the engine (at the earliest, its real-time instant) to the frame leaving it."""
    mode: str
    fps: float
    frames: int = 0
    rendered: int = 0
    dropped: int = 0
    late: int = 0
    audio_s: float = 0.0
    wall_s: float = 0.0
    achieved_fps: float = 0.0
    render_fps: float = 0.0
    realtime_factor: float = 0.0
    latency_mean_ms: float = 0.0
    latency_p95_ms: float = 0.0
    delay_ms: float = 0.0
    stage_s: dict = dataclasses.field(default_factory=lambda: {s: 0.0 for s in STAGES})
    waited_s: float = 0.0
    stopped: bool = False
    variant: str = ""
    providers: str = ""
    renderer: str = ""          # the renderer backend: "onnx (providers)" or "torch (PyTorch on cuda:0, ...)"

    @property
    def shares(self) -> dict:
        total = sum(self.stage_s.values())
        return {s: (self.stage_s[s] / total if total > 0 else 0.0) for s in STAGES}

    @property
    def per_frame_ms(self) -> dict:
        """Milliseconds per frame of each stage: features, a2m and sink per frame, renderer and paste per rendered one."""
        return {s: 1000 * self.stage_s[s] / max(1, self.rendered if s in ("renderer", "paste") else self.frames)
                for s in STAGES}

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["shares"] = self.shares
        d["per_frame_ms"] = self.per_frame_ms
        return d

    def summary(self) -> str:
        behind = "" if self.realtime_factor >= 1 or not self.rendered else \
            f"; rendering runs at {self.realtime_factor:.2f}x real time"
        return (f"{self.mode}: {self.frames} frames ({self.audio_s:.2f} s of audio) in {self.wall_s:.2f} s; rendered "
                f"{self.rendered}, dropped {self.dropped}; {self.achieved_fps:.1f} fps achieved (target {self.fps:g}), "
                f"renderer+paste alone {self.render_fps:.1f} fps; latency mean {self.latency_mean_ms:.0f} ms, p95 "
                f"{self.latency_p95_ms:.0f} ms{behind}{' (stopped early)' if self.stopped else ''}")

    def table(self) -> str:
        """A markdown table of the numbers and the per-stage times."""
        rows = ["| measure | value |", "| --- | ---: |"]
        for k, v in (("mode", self.mode), ("renderer backend", self.renderer), ("renderer variant", self.variant),
                     ("providers", self.providers),
                     ("frames (rendered / dropped)", f"{self.frames} ({self.rendered} / {self.dropped})"),
                     ("audio", f"{self.audio_s:.2f} s"), ("wall clock", f"{self.wall_s:.2f} s"),
                     ("achieved fps", f"{self.achieved_fps:.1f} (target {self.fps:g})"),
                     ("renderer + paste alone", f"{self.render_fps:.1f} fps"),
                     ("real-time factor", f"{self.realtime_factor:.2f}"),
                     ("latency mean / p95", f"{self.latency_mean_ms:.0f} / {self.latency_p95_ms:.0f} ms"),
                     ("scheduled delay (realtime)", f"{self.delay_ms:.0f} ms")):
            rows.append(f"| {k} | {v} |")
        per = self.per_frame_ms
        for s in STAGES:
            rows.append(f"| {s} | {per[s]:.1f} ms/frame ({100 * self.shares[s]:.0f} % of busy time) |")
        return "\n".join(rows)

    def _repr_markdown_(self) -> str:
        return self.table()

    def plot(self, ax=None):
        """A horizontal bar chart of each stage's share of the busy time. Returns the matplotlib Figure."""
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 2.6))
        else:
            fig = ax.figure
        sh = self.shares
        ax.barh(list(STAGES)[::-1], [100 * sh[s] for s in STAGES][::-1], color="#4c72b0")
        per = self.per_frame_ms
        for i, s in enumerate(list(STAGES)[::-1]):
            ax.text(100 * sh[s] + 1, i, f"{per[s]:.1f} ms/frame", va="center", fontsize=8)
        ax.set_xlim(0, 115)
        ax.set_xlabel("share of busy time (%)")
        ax.set_title(f"{self.mode}: {self.achieved_fps:.1f} fps achieved, target {self.fps:g}")
        fig.tight_layout()
        return fig
