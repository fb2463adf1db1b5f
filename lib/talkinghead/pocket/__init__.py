"""The pocket renderer: a per-avatar student distilled from the full renderer, the same contract at a tiny fraction
of the cost, so the avatar runs at 25 fps on two CPU cores (notebooks/07_pocket_renderer.ipynb,
`python -m talkinghead distill`).

    student       PocketStudent (motion -> flow + paint fields -> warped reference face), PocketConfig, CONFIGS
    teacher       gather_motions (recorded, Audio2Motion, emotion, idle, perturbed; whole lines held out), Teacher
    distill       distill (the whole stage), make_teacher_data, train_student, evaluate, DistillConfig, DistillResult
    metrics       psnr, ssim per frame
    flops         count_onnx (every op of a graph), count_torch (convolutions and matmuls)
    frame         the frame graph: motion -> the pasted frame's changing box as RGBA bytes (page, live runtime)
    bundle_entry  export_pocket: pocket.onnx (+ export_frame: pocket_frame.onnx, pocket_background.png) and
                  `models.renderer.variants.pocket` in the manifest
    plots         loss curves, side-by-side frames, per-frame quality, comparison video (notebook 07)
"""
from __future__ import annotations

from .bundle_entry import POCKET_FILE, VARIANT, export_frame, export_onnx, export_pocket, latency_ms, parity, register
from .frame import BACKGROUND_FILE, FRAME_FILE
from .distill import DistillConfig, DistillResult, TeacherData, distill, evaluate, make_teacher_data, \
    moving_region, nearest_frames, resolve_inputs, train_student
from .flops import count_onnx, count_torch
from .metrics import psnr, ssim
from .student import CONFIGS, PocketConfig, PocketStudent, motion_stats, n_parameters
from .teacher import KINDS, MotionSet, Teacher, estimate_note, gather_motions

__all__ = ["POCKET_FILE", "VARIANT", "BACKGROUND_FILE", "FRAME_FILE", "export_frame", "export_onnx", "export_pocket", "latency_ms", "parity", "register",
           "DistillConfig", "DistillResult", "TeacherData", "distill", "evaluate", "make_teacher_data",
           "moving_region", "nearest_frames", "resolve_inputs", "train_student", "count_onnx", "count_torch", "psnr",
           "ssim", "CONFIGS", "PocketConfig", "PocketStudent", "motion_stats", "n_parameters", "KINDS", "MotionSet",
           "Teacher", "estimate_note", "gather_motions"]
