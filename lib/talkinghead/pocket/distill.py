"""Distillation: teacher frames -> a trained pocket student, measured on held-out corpus lines
(notebooks/07_pocket_renderer.ipynb; `python -m talkinghead distill`).

    bundle + dataset (+ audio2motion.pt) --gather_motions--> training / held-out motions
        --Teacher (full renderer)--> uint8 frames: training ones at `train_size`, held-out ones at 512
        --train_student (Adam, one-cycle LR, L1 at `train_size`)--> PocketStudent
        --evaluate--> held-out PSNR / SSIM per frame: student vs teacher, beside two baselines at `train_size`:
                      the static reference (the face that never moves) and the nearest training frame (the teacher
                      frame of the closest training motion: what a lookup table of rendered frames would show)
        --bundle_entry.export_pocket--> pocket.onnx + manifest entry (models.renderer.variants.pocket)

Training runs at `train_size` (the teacher frames area-downsampled; the sample teacher paints 128x128, so 128 loses
nothing there), the exported student renders the 512 crop from the 512 reference with the same fields.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import layout
from ..errors import BundleError, DatasetError
from . import metrics
from .student import CONFIGS, PocketConfig, PocketStudent, motion_stats, n_parameters
from .teacher import MotionSet, Teacher, estimate_note, gather_motions

CROP = layout.CROP_SIZE
TRAIN_SIZE = {"sample": 128, "full": 256}                # the sample teacher paints 128 px: nothing is lost there
FRAMES = {"sample": (160, 40), "full": (3000, 250)}       # (training, held-out) teacher frames by default
STEPS = {"sample": 200, "full": 8000}
BATCH = {"sample": 8, "full": 16}


@dataclass
class DistillConfig:
    """Training settings; None picks the profile's default (`TRAIN_SIZE`, `FRAMES`, `STEPS`, `BATCH`)."""
    steps: int | None = None
    batch: int | None = None
    lr: float = 3e-3
    train_size: int | None = None
    n_train: int | None = None
    n_held: int | None = None
    holdout: float = 0.2
    seed: int = 0
    eval_every: int | None = None
    roi_threshold: float = 2.0 / 255     # a pixel "moves" when its largest change over training frames exceeds this

    def resolved(self, profile: str) -> "DistillConfig":
        p = "sample" if profile == "sample" else "full"
        n_train, n_held = FRAMES[p]
        steps = self.steps or STEPS[p]
        return dataclasses.replace(self, steps=steps, batch=self.batch or BATCH[p],
                                   train_size=self.train_size or TRAIN_SIZE[p],
                                   n_train=self.n_train or n_train, n_held=self.n_held or n_held,
                                   eval_every=self.eval_every or max(1, steps // 10))


@dataclass
class TeacherData:
    """Teacher frames: `train` uint8 (Nt, 3, s, s) at `size`, `held` uint8 (Nh, 3, 512, 512), the float `reference`
    (3, 512, 512), the `motions` (MotionSet, training ones first) and the measured teacher speed."""
    motions: MotionSet
    train: np.ndarray
    held: np.ndarray
    reference: np.ndarray
    size: int
    seconds_per_frame: float
    device: str
    profile: str

    def small(self, frames: np.ndarray) -> np.ndarray:
        """uint8 (N, 3, 512, 512) -> (N, 3, size, size), area-downsampled like the training frames."""
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(frames).float() / 255
        return (F.interpolate(x, size=(self.size, self.size), mode="area") * 255).round().byte().numpy()

    def reference_small(self):
        import torch
        import torch.nn.functional as F

        return F.interpolate(torch.from_numpy(self.reference)[None], size=(self.size, self.size), mode="area")


def make_teacher_data(bundle, dataset, checkpoint=None, config: DistillConfig | None = None, lp=None,
                      device="auto", progress: bool = True) -> TeacherData:
    """Gather motions and render them with the full renderer (progress bars; the time is estimated and said first)."""
    cfg = (config or DistillConfig()).resolved(bundle.profile)
    motions = gather_motions(dataset, checkpoint, cfg.n_train, cfg.n_held, cfg.holdout, cfg.seed)
    teacher = Teacher(bundle, lp=lp, device=device)
    spf = teacher.seconds_per_frame()
    say = print if progress else (lambda *a, **k: None)
    say(motions.summary())
    say(estimate_note(bundle.profile, teacher.device, spf, len(motions)))
    train = teacher.render(motions.train.motion, cfg.train_size, progress, "teacher (training)")
    held = teacher.render(motions.held.motion, CROP, progress, "teacher (held-out)")
    order = np.concatenate([np.flatnonzero(~motions.held_out), np.flatnonzero(motions.held_out)])
    return TeacherData(motions.subset(order), train, held, teacher.reference(), cfg.train_size, spf,
                       str(teacher.device), bundle.profile)


def moving_region(data: TeacherData, threshold: float = 2.0 / 255, multiple: int = 32) -> tuple | None:
    """(y0, x0, h, w) in the 512 crop around every pixel whose largest change from the reference over the training
    frames exceeds `threshold`, grown to multiples of `multiple` pixels; None when that is the whole crop."""
    ref = data.reference_small()[0].numpy()
    change = np.zeros(ref.shape[1:], np.float32)
    for i in range(0, len(data.train), 64):
        d = np.abs(data.train[i:i + 64].astype(np.float32) / 255 - ref).max(axis=(0, 1))
        change = np.maximum(change, d)
    ys, xs = np.nonzero(change > threshold)
    if not len(ys):
        return (CROP // 2 - multiple // 2, CROP // 2 - multiple // 2, multiple, multiple)
    s = CROP / data.size
    y0, y1 = int(ys.min() * s) // multiple * multiple, -(-int((ys.max() + 1) * s) // multiple) * multiple
    x0, x1 = int(xs.min() * s) // multiple * multiple, -(-int((xs.max() + 1) * s) // multiple) * multiple
    return None if (y0, x0, y1, x1) == (0, 0, CROP, CROP) else (y0, x0, min(CROP, y1) - y0, min(CROP, x1) - x0)


# ======================================================================================================================
# training


def train_student(data: TeacherData, config: DistillConfig | None = None, pocket: PocketConfig | None = None,
                  progress: bool = True) -> tuple[PocketStudent, dict]:
    """Train a student on the teacher frames -> (student in eval mode, history {step, loss, held_step, held_psnr,
    seconds}). Deterministic for a given seed (on the CPU)."""
    import torch
    from tqdm.auto import tqdm

    cfg = (config or DistillConfig()).resolved(data.profile)
    n = len(data.train)
    mean, std = motion_stats(data.motions.motion[:n])
    pc = pocket or dataclasses.replace(CONFIGS["sample" if data.profile == "sample" else "full"])
    if pc.roi is None:
        pc = dataclasses.replace(pc, roi=moving_region(data, cfg.roi_threshold))
    torch.manual_seed(cfg.seed)
    student = PocketStudent(data.reference, mean, std, pc)
    student.init_basis(data.train, data.reference_small())
    motion = torch.from_numpy(data.motions.motion[:n])
    target = torch.from_numpy(data.train)
    held_m = torch.from_numpy(data.motions.motion[n:])
    held_t = torch.from_numpy(data.small(data.held)).float() / 255
    ref = data.reference_small()
    opt = torch.optim.Adam(student.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(cfg.seed)
    hist = {"step": [], "loss": [], "held_step": [], "held_psnr": [], "seconds": 0.0}
    t0 = time.perf_counter()
    student.train()
    for step in tqdm(range(1, cfg.steps + 1), desc="distil", unit="step", disable=not progress):
        idx = torch.randint(0, n, (min(cfg.batch, n),), generator=gen)
        out = student.paint(motion[idx], ref, data.size)
        loss = (out - target[idx].float() / 255).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        hist["step"].append(step)
        hist["loss"].append(loss.item())
        if len(held_m) and (step % cfg.eval_every == 0 or step == cfg.steps):
            with torch.no_grad():
                student.eval()
                p = metrics.psnr(student.paint(held_m, ref, data.size), held_t)
                student.train()
            hist["held_step"].append(step)
            hist["held_psnr"].append(metrics.finite_mean(p))
    hist["seconds"] = time.perf_counter() - t0
    return student.eval(), hist


def nearest_frames(data: TeacherData, motions: np.ndarray) -> np.ndarray:
    """Indices of the training motions nearest to `motions` (Euclidean, each dimension scaled by its spread)."""
    n = len(data.train)
    mean, std = motion_stats(data.motions.motion[:n])
    a = (data.motions.motion[:n] - mean) / std
    b = (np.asarray(motions, np.float32) - mean) / std
    d = (b ** 2).sum(1)[:, None] - 2 * b @ a.T + (a ** 2).sum(1)[None]
    return d.argmin(1)


def evaluate(student: PocketStudent, data: TeacherData, batch: int = 16) -> dict:
    """Held-out quality per frame. At the training size: PSNR of the student, the static reference and the nearest
    training frame against the teacher; at 512 (what pocket.onnx paints): the student's PSNR and SSIM."""
    import torch

    n = len(data.train)
    held_m = data.motions.motion[n:]
    if not len(held_m):
        raise DatasetError("no held-out motions to evaluate on: the dataset needs at least two corpus lines.")
    small = data.small(data.held)
    ref = data.reference_small()
    with torch.no_grad():
        stu_small = torch.cat([student.paint(torch.from_numpy(held_m[i:i + batch]), ref, data.size)
                               for i in range(0, len(held_m), batch)])
        big = [student(torch.from_numpy(held_m[i:i + batch])) for i in range(0, len(held_m), batch)]
        ps = np.concatenate([metrics.psnr(b, data.held[i * batch:i * batch + len(b)]) for i, b in enumerate(big)])
        ss = np.concatenate([metrics.ssim(b, data.held[i * batch:i * batch + len(b)]) for i, b in enumerate(big)])
    static_512 = metrics.psnr(np.broadcast_to(data.reference, data.held.shape).astype(np.float32), data.held)
    per = {"student": metrics.psnr(stu_small, small),
           "static": metrics.psnr(ref.expand(len(small), -1, -1, -1), small),
           "nearest": metrics.psnr(data.train[nearest_frames(data, held_m)], small)}
    out = {"frames": int(len(held_m)), "size": int(data.size),
           "lines": sorted(set(data.motions.line[n:].tolist()) - {""}),
           "per_frame": {"psnr_512": ps, "ssim_512": ss, "psnr_static_512": static_512,
                         **{f"psnr_{k}": v for k, v in per.items()}}}
    out.update({f"psnr_{k}": metrics.finite_mean(v) for k, v in per.items()})
    out.update(psnr_512=metrics.finite_mean(ps), ssim_512=float(np.mean(ss)),
               psnr_static_512=metrics.finite_mean(static_512))
    return out


# ======================================================================================================================
# the whole stage


@dataclass
class DistillResult:
    """What `distill` made: the `student`, its teacher `data`, training `history`, held-out `evaluation`, the manifest
    `entry` and `path` of pocket.onnx (None without export), and the seconds spent per phase."""
    student: PocketStudent
    data: TeacherData
    history: dict
    evaluation: dict
    config: DistillConfig
    entry: dict | None = None
    path: Path | None = None
    seconds: dict = field(default_factory=dict)

    def table(self) -> str:
        """Held-out PSNR against the teacher: student, static reference, nearest training frame (plain text)."""
        e = self.evaluation
        rows = [("held-out, vs the teacher", f"PSNR dB at {e['size']} px", "SSIM at 512"),
                ("pocket student", f"{e['psnr_student']:.2f}", f"{e['ssim_512']:.4f}"),
                ("static reference", f"{e['psnr_static']:.2f}", ""),
                ("nearest training frame", f"{e['psnr_nearest']:.2f}", "")]
        w = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = ["  ".join(c.ljust(x) for c, x in zip(r, w)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * x for x in w))
        lines.append(f"at 512 px (what pocket.onnx paints): student PSNR {e['psnr_512']:.2f} dB, static reference "
                     f"{e['psnr_static_512']:.2f} dB; {e['frames']} frames of lines {', '.join(e['lines'])}")
        return "\n".join(lines)

    def summary(self) -> str:
        s = self.student
        txt = (f"pocket student: {n_parameters(s) / 1e3:.0f} k parameters, fields {s.config.field_size} px, region "
               f"{s.config.roi or 'whole crop'}; {len(self.data.train)} teacher frames "
               f"({self.seconds.get('teacher', 0):.0f} s), {self.config.steps} steps ({self.history['seconds']:.0f} s)")
        if self.entry:
            txt += (f"\n{self.path}: {self.entry['gflop_per_frame']:.3f} GFLOP per frame, "
                    f"{self.entry['latency_ms']:.1f} ms per frame on {self.entry['cpu_threads']} CPU threads")
            f = self.entry.get("frame")
            if f:
                y0, x0, h, w = f["box"]
                txt += (f"\n{self.path.parent / f['file']}: the frame graph, {w}x{h} pixels at ({x0}, {y0}) painted "
                        f"and pasted per frame, {f['latency_ms']:.1f} ms (within {f['max_grey_diff']} grey level of "
                        "pocket + paste)")
        return txt + "\n" + self.table()


def resolve_inputs(bundle_dir=None, dataset=None, checkpoint="auto", need_models: bool = True, progress: bool = True):
    """(Bundle, Dataset, a2m Checkpoint or None) for distillation; each missing input is one sentence.

    `dataset`: a Dataset, a path, or None (the workspace's training dataset, `sample.training_file`).
    `checkpoint`: "auto" (the bundle's audio2motion.pt when present), a path, a loaded checkpoint, or None."""
    from .. import a2m, paths
    from ..bake import load_bundle
    from ..dataset import Dataset, load_dataset

    bundle_dir = Path(bundle_dir) if bundle_dir else paths.avatar_dir()
    bundle = load_bundle(bundle_dir)
    if need_models and not (bundle.manifest.get("models") or {}).get("paste"):
        raise BundleError(f"{bundle_dir / 'manifest.json'}: the avatar has no exported models yet; export it first "
                          "(notebooks/05_export.ipynb or `python -m talkinghead export`), then distil.")
    if dataset is None:
        if not (paths.data_dir() / "dataset.npz").is_file():
            raise DatasetError(f"{paths.data_dir() / 'dataset.npz'}: no dataset; extract one from your recording "
                               "first (notebooks/03_motion_extraction.ipynb or `python -m talkinghead extract`).")
        from ..sample import training_file
        dataset = training_file(paths.data_dir() / "dataset.npz", verbose=progress)
    if not isinstance(dataset, Dataset):
        if not Path(dataset).is_file():
            raise DatasetError(f"{dataset}: no such dataset; extract one with notebooks/03_motion_extraction.ipynb "
                               "or `python -m talkinghead extract`.")
        dataset = load_dataset(dataset, min_valid_s=0.0)
    if isinstance(checkpoint, str) and checkpoint == "auto":
        ck = bundle_dir / a2m.CHECKPOINT_NAME
        checkpoint = a2m.load_checkpoint(ck) if ck.is_file() else None
    elif checkpoint is not None and not isinstance(checkpoint, a2m.Checkpoint):
        checkpoint = a2m.load_checkpoint(checkpoint)
    return bundle, dataset, checkpoint


def distill(bundle_dir=None, dataset=None, checkpoint="auto", config: DistillConfig | None = None,
            pocket: PocketConfig | None = None, lp=None, device="auto", export: bool = True,
            progress: bool = True) -> DistillResult:
    """The whole stage: teacher frames, training, held-out evaluation and (with `export`) pocket.onnx in the bundle,
    registered as the renderer variant "pocket". See the module docstring."""
    from .bundle_entry import export_pocket

    bundle, ds, ckpt = resolve_inputs(bundle_dir, dataset, checkpoint, need_models=export, progress=progress)
    say = print if progress else (lambda *a, **k: None)
    if ckpt is None:
        say("no trained Audio2Motion in the bundle: distilling on recorded, perturbed and rest motions only")
    cfg = (config or DistillConfig()).resolved(bundle.profile)
    t0 = time.perf_counter()
    data = make_teacher_data(bundle, ds, ckpt, cfg, lp=lp, device=device, progress=progress)
    t1 = time.perf_counter()
    student, hist = train_student(data, cfg, pocket, progress)
    ev = evaluate(student, data)
    res = DistillResult(student, data, hist, ev, cfg, seconds={"teacher": t1 - t0, "train": hist["seconds"]})
    if export:
        res.entry = export_pocket(bundle.path, student, ev, data, cfg)
        res.path = bundle.path / res.entry["file"]
    res.seconds["total"] = time.perf_counter() - t0
    return res


__all__ = ["DistillConfig", "TeacherData", "DistillResult", "make_teacher_data", "moving_region", "train_student",
           "evaluate", "nearest_frames", "resolve_inputs", "distill"]
