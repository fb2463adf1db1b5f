"""Export: the avatar as ONNX models that run anywhere onnxruntime runs (notebooks/05_export.ipynb).

Files written into the avatar bundle (all listed with their sha256 in `manifest.json`, section `models`):

    renderer.onnx        motion float32 (B, 69) -> face float32 (B, 3, 512, 512) in [0, 1]    (B dynamic)
                         the baked renderer (`render.BakedRenderer`, paste=False): relative motion applied to the
                         baked source, keypoint transform, stitching, W (5-D GridSample, opset 20), G (spectral norm
                         folded into plain weights), resize to the 512 crop. f_s and the source keypoints are
                         constants inside the graph.
    renderer.fp16.onnx   the same in float16 inside, float32 at the inputs/outputs (for GPUs; CPUs vary)
    renderer.int8.onnx   static QDQ int8 (Conv/MatMul/Gemm, per channel), calibrated on motions of the dataset,
                         layers that lose too much kept in float (listed in the manifest)
    paste.onnx           face float32 (B, 3, 512, 512) -> frame float32 (B, 3, H, W) in [0, 1]: the face pasted
                         back into the portrait with the baked soft mask (grid, mask and portrait are constants)
    audio2motion.onnx    one streaming step of `a2m.Audio2Motion.step`:
                         features float32 (1, C, 4, 80) [C dynamic], conv_state float32 (1, K-1, H),
                         gru_state float32 (layers, 1, H), emotion int64 (1,) [n_emotions = no label]
                         -> motion float32 (1, C, 69), conv_state_out, gru_state_out.
                         The first `lookahead_frames` outputs of a stream are warm-up (drop them); after the last
                         chunk feed `lookahead_frames` frames of the manifest's `silence`.
    idle.npy             (when the checkpoint holds idle motion) the loopable idle track (M, len(dims)) float32

Every graph is exported with the TorchScript exporter at opset 20 (5-D GridSample needs it), simplified by
onnxruntime's basic offline optimisation (constant folding, redundant-node elimination: standard ONNX ops only),
checked with `onnx.checker` and written atomically.

Parity. The sample profile's seeded G amplifies float rounding (an InstanceNorm over a channel with a spread of 2e-3):
PyTorch in float32 differs from PyTorch in float64, and even from itself at another batch size, by up to ~7e-4 on a
few pixels. So the renderer's parity is judged against a float64 PyTorch run: onnxruntime must be no further from it
than PyTorch float32 is (and the mean error must be tiny); everything before G (keypoints, W) and Audio2Motion must
agree within 1e-4. `parity()` measures all of it.

Without a dataset, calibration and evaluation motions are small random motions around zero (`random_motions`).
"""
from __future__ import annotations

import copy
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from . import layout
from .errors import BundleError, TalkingHeadError
from .fileio import atomic_path

OPSET = 20
CROP = 512
RENDERER_FILES = {"fp32": "renderer.onnx", "fp16": "renderer.fp16.onnx", "int8": "renderer.int8.onnx"}
PASTE_FILE = "paste.onnx"
A2M_FILE = "audio2motion.onnx"
IDLE_FILE = "idle.npy"
VARIANTS = ("fp32", "fp16", "int8")
VARIANT_USE = {"fp32": "reference", "fp16": "GPU (CPU speed depends on the CPU)", "int8": "CPU"}
# Ops kept in float16-free float32 in the fp16 variant: sampling, normalisation (variance overflows fp16) and resize.
FP16_BLOCK = ["GridSample", "InstanceNormalization", "BatchNormalization", "Resize", "Softmax", "ReduceMean",
              "Exp", "Sigmoid"]
INT8_OPS = ["Conv", "MatMul", "Gemm"]
INT8_MIN_PSNR_DB = 35.0     # a block whose quantization alone brings the face below this PSNR stays float

# ======================================================================================================================
# motions for calibration and evaluation


def random_motions(n: int, seed: int = 0) -> np.ndarray:
    """`n` small random motions around zero (N, 69): exp ~ N(0, 0.01), pose ~ N(0, 5 deg), t ~ N(0, 0.02),
    log_scale ~ N(0, 0.02). The stand-in for dataset motions when no dataset is given."""
    rng = np.random.default_rng(seed)
    m = np.zeros((n, layout.MOTION_DIM), np.float32)
    m[:, layout.EXP] = rng.normal(0, 0.01, (n, 63))
    m[:, layout.POSE] = rng.normal(0, 5.0, (n, 3))
    m[:, layout.T] = rng.normal(0, 0.02, (n, 2))
    m[:, layout.LOG_SCALE] = rng.normal(0, 0.02, (n, 1))
    return m


def dataset_motions(dataset, n_calibration: int = 16, n_eval: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """(calibration (n_cal, 69), evaluation (n_eval, 69), description) from a dataset's valid frames.

    Frames are split by corpus line (`a2m.split_lines`): calibration from one set of lines, evaluation from the
    others, so evaluation motions are held out; with fewer than two lines, disjoint random frames.
    """
    rng = np.random.default_rng(seed)
    valid = np.flatnonzero(dataset.valid)
    if len(valid) < 2:
        raise TalkingHeadError(f"{dataset.name()}: fewer than 2 frames with a face; cannot sample calibration motions.")
    try:
        from .a2m import spans as _spans, split_lines
        split = split_lines(dataset, 0.3, seed)
        cal_pool = np.concatenate([np.arange(s, e) for s, e in _spans(dataset, split["train"])])
        ev_pool = np.concatenate([np.arange(s, e) for s, e in _spans(dataset, split["val"])])
        cal_pool = cal_pool[dataset.valid[cal_pool]]
        ev_pool = ev_pool[dataset.valid[ev_pool]]
        how = "held-out corpus lines"
        if not len(cal_pool) or not len(ev_pool):
            raise ValueError
    except Exception:
        perm = rng.permutation(valid)
        half = max(1, len(perm) // 2)
        cal_pool, ev_pool, how = perm[:half], perm[half:], "disjoint frames"
    cal = rng.choice(cal_pool, size=min(n_calibration, len(cal_pool)), replace=False)
    ev = rng.choice(ev_pool, size=min(n_eval, len(ev_pool)), replace=False)
    return dataset.motion[np.sort(cal)].copy(), dataset.motion[np.sort(ev)].copy(), \
        f"dataset {dataset.name()}: {len(cal)} calibration frames, {len(ev)} evaluation frames from {how}"


def _motions(dataset_path, n_calibration, n_eval, seed=0):
    if dataset_path is not None and Path(dataset_path).exists():
        from .dataset import load_dataset
        return dataset_motions(load_dataset(dataset_path, min_valid_s=0.0), n_calibration, n_eval, seed)
    m = random_motions(n_calibration + n_eval, seed)
    return m[:n_calibration], m[n_calibration:], "random motions around zero (no dataset given)"


# ======================================================================================================================
# torch modules to export


def export_networks(lp):
    """A CPU float32 copy of the networks the renderer uses, G's spectral norm folded (the shared `lp` is untouched)."""
    import torch

    from .liveportrait.generator import fold_spectral_norm

    nets = {name: copy.deepcopy(getattr(lp, name)).to("cpu", torch.float32).eval()
            for name in ("warping_module", "spade_generator", "stitching_retargeting_module")}
    fold_spectral_norm(nets["spade_generator"])
    out = copy.copy(lp)                     # a LivePortrait (or any object with the same attributes)
    for k, v in dict(nets, device=torch.device("cpu"), dtype=torch.float32).items():
        setattr(out, k, v)
    return out


def renderer_module(lp, bundle, paste: bool = False):
    """`render.BakedRenderer` on `export_networks(lp)`, in eval mode: exactly what renderer.onnx computes."""
    from .render import BakedRenderer

    return BakedRenderer(export_networks(lp), bundle, paste=paste).eval()


def paste_module(bundle):
    """forward(face (B, 3, 512, 512)) -> frame (B, 3, H, W): BakedRenderer's paste step with the bundle's grid,
    mask (paste_mask.png) and portrait as buffers."""
    import torch
    import torch.nn.functional as F

    from .crop import paste_grid

    class PasteStep(torch.nn.Module):
        def __init__(self):
            super().__init__()
            h, w = bundle.portrait.shape[:2]
            grid = paste_grid(bundle.source["M_c2o"], (h, w), CROP)
            img = bundle.portrait.astype(np.float32).transpose(2, 0, 1)[None] / 255.0
            for name, value in {"grid": grid, "mask": bundle.mask[None, None], "portrait": img}.items():
                self.register_buffer(name, torch.from_numpy(np.ascontiguousarray(value, np.float32)))

        def forward(self, face):
            grid = self.grid.expand(face.shape[0], -1, -1, -1)
            warped = F.grid_sample(face, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            return torch.clamp(self.mask * warped + (1 - self.mask) * self.portrait, 0.0, 1.0)

    return PasteStep().eval()


def a2m_step_module(model):
    """forward(features, conv_state, gru_state, emotion) -> (motion, conv_state_out, gru_state_out), eval mode."""
    import torch

    class Step(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = copy.deepcopy(model).cpu().float().eval()

        def forward(self, features, conv_state, gru_state, emotion):
            y, (c, g) = self.model.step(features, (conv_state, gru_state), emotion)
            return y, c, g

    return Step().eval()


# ======================================================================================================================
# ONNX writing


def _export(module, args, path: Path, input_names, output_names, dynamic_axes) -> Path:
    """torch.onnx.export (TorchScript exporter, opset 20) -> onnxruntime basic optimisation -> checker -> atomic save."""
    import warnings

    import onnx
    import torch

    with tempfile.TemporaryDirectory(prefix="th-export-") as td:
        raw, opt = Path(td) / "raw.onnx", Path(td) / "opt.onnx"
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, str(raw), opset_version=OPSET, dynamo=False, input_names=input_names,
                              output_names=output_names, dynamic_axes=dynamic_axes, do_constant_folding=True)
        simplify(raw, opt)
        model = fold_input_independent(onnx.load(str(opt)))
        onnx.save(model, str(raw))
        simplify(raw, opt)                 # constant-fold again through what was just made constant
        model = onnx.load(str(opt))
        onnx.checker.check_model(model, full_check=True)
        _save(model, path)
    return path


def fold_input_independent(model, max_elements: int = 1 << 22):
    """Replace the tensors that depend neither on the input values nor on the dynamic axes by constants.

    The tracer records shape arithmetic (e.g. the warping's identity grid is built from the feature volume's D, H, W
    via Shape -> Gather -> Cast -> Range); with a dynamic batch axis neither onnxruntime's nor onnx's constant folding
    can evaluate it, although only the batch entry of those shapes is dynamic. Here: tensors that do not depend on
    input *values* (a taint walk that stops at Shape) are computed at two batch sizes (1 and 3); those equal at both
    (and at most `max_elements` long) become initializers, and the nodes that only fed them are dropped.
    """
    import onnx
    from onnx import numpy_helper

    g = model.graph
    inputs = [i for i in g.input if i.name not in {t.name for t in g.initializer}]
    tainted = {i.name for i in inputs}
    for n in g.node:                                      # nodes are topologically sorted
        if n.op_type not in ("Shape", "Size") and any(x in tainted for x in n.input):
            tainted.update(n.output)
    produced = [o for n in g.node for o in n.output if o]
    cands = [o for o in produced if o not in tainted]
    if not cands:
        return model
    aug = onnx.ModelProto()
    aug.CopyFrom(model)
    del aug.graph.output[:]               # only the candidates: the rest of the network is not run
    for t in cands:
        aug.graph.output.append(onnx.helper.make_empty_tensor_value_info(t))
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(aug.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]

    def run(batch):
        feeds = {}
        for i in inputs:
            tt = i.type.tensor_type
            shape = [batch if (d.dim_param or not d.dim_value) else d.dim_value for d in tt.shape.dim]
            dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)
            feeds[i.name] = np.zeros(shape, dtype)
        return dict(zip(names, sess.run(None, feeds)))

    a, b = run(1), run(3)
    fold = {t for t in cands if t in a and a[t].shape == b[t].shape and a[t].size <= max_elements
            and np.array_equal(a[t], b[t])}
    consumed_by_kept = set()
    keep_nodes = []
    for n in g.node:
        if all(o in fold for o in n.output if o):
            continue
        keep_nodes.append(n)
        consumed_by_kept.update(n.input)
    consumed_by_kept.update(o.name for o in g.output)
    new_inits = [numpy_helper.from_array(np.asarray(a[t]), t) for t in sorted(fold & consumed_by_kept)]
    del g.node[:]
    g.node.extend(keep_nodes)
    g.initializer.extend(new_inits)
    used = {x for n in g.node for x in n.input} | {o.name for o in g.output}
    kept_inits = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(kept_inits)
    del g.value_info[:]
    return model


def simplify(src: Path, dst: Path) -> None:
    """Constant folding and redundant-node elimination by onnxruntime's basic offline optimisation (standard ops only)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.optimized_model_filepath = str(dst)
    so.log_severity_level = 3
    ort.InferenceSession(str(src), so, providers=["CPUExecutionProvider"])


def _save(model, path: Path) -> None:
    import onnx

    with atomic_path(path, suffix=".onnx") as tmp:
        onnx.save(model, str(tmp))


def session(path, providers=None, threads: int | None = None):
    """An onnxruntime InferenceSession (CPU unless `providers`), quiet."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), so, providers=providers or ["CPUExecutionProvider"])


def op_types(model_or_path) -> list[str]:
    """Sorted distinct op types of a graph."""
    import onnx

    m = onnx.load(str(model_or_path)) if not hasattr(model_or_path, "graph") else model_or_path
    return sorted({n.op_type for n in m.graph.node})


# ======================================================================================================================
# the three exports


def _load_bundle(bundle_dir):
    from .bake import load_bundle

    return load_bundle(bundle_dir, verify=False)


def _lp_for(bundle, lp):
    if lp is not None:
        return lp
    from .liveportrait import load_liveportrait

    return load_liveportrait(profile=bundle.profile)


def export_renderer(bundle_dir=None, lp=None, variants=VARIANTS, calibration=None, evaluation=None,
                    latency_frames: int = 10, progress: bool = True, register: bool = True) -> dict:
    """Write renderer.onnx (+ fp16 / int8 variants) into the bundle; returns the manifest's `renderer` entry.

    `calibration`: motions (N, 69) for int8 calibration; `evaluation`: held-out motions (M, 69) on which every
    variant's max/mean error and PSNR against the PyTorch output are measured (defaults: `random_motions`).
    """
    import torch

    from .paths import avatar_dir

    variants = tuple(variants)
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise ValueError(f"unknown renderer variant(s) {sorted(unknown)}: use {', '.join(VARIANTS)}")
    if "fp32" not in variants:
        variants = ("fp32",) + variants      # the others are made from it
    bundle_dir = Path(bundle_dir) if bundle_dir else avatar_dir()
    bundle = _load_bundle(bundle_dir)
    lp = _lp_for(bundle, lp)
    calibration = random_motions(16, 1) if calibration is None else np.asarray(calibration, np.float32)
    evaluation = random_motions(4, 2) if evaluation is None else np.asarray(evaluation, np.float32)
    module = renderer_module(lp, bundle)
    say = print if progress else (lambda *a, **k: None)

    fp32 = bundle_dir / RENDERER_FILES["fp32"]
    t0 = time.perf_counter()
    _export(module, (torch.zeros(1, layout.MOTION_DIM),), fp32, ["motion"], ["face"],
            {"motion": {0: "batch"}, "face": {0: "batch"}})
    say(f"renderer.onnx exported in {time.perf_counter() - t0:.1f} s")
    with torch.no_grad():
        reference = module(torch.from_numpy(evaluation)).numpy()
    out = {}
    for v in variants:
        path = bundle_dir / RENDERER_FILES[v]
        t0 = time.perf_counter()
        if v == "fp16":
            info = make_fp16(fp32, path)
        elif v == "int8":
            info = make_int8(fp32, path, calibration, evaluation)
        else:
            info = {"float_ops": op_types(path)}
        if v != "fp32":
            say(f"{path.name} made in {time.perf_counter() - t0:.1f} s")
        out[v] = dict(file=path.name, use=VARIANT_USE[v], **evaluate_variant(path, evaluation, reference), **info)
    lat = latencies({v: bundle_dir / RENDERER_FILES[v] for v in out}, {"motion": evaluation[:1]}, latency_frames)
    for v in out:
        out[v]["latency_ms"] = lat[v]
    entry = {"input": "motion", "output": "face", "variants": out, "default": "fp32",
             "shape": {"motion": ["B", layout.MOTION_DIM], "face": ["B", 3, CROP, CROP]}}
    if register:
        _register(bundle_dir, [RENDERER_FILES[v] for v in out], renderer=entry)
    return entry


def export_paste(bundle_dir=None) -> dict:
    """Write paste.onnx into the bundle; returns the manifest's `paste` entry."""
    import torch

    from .paths import avatar_dir

    bundle_dir = Path(bundle_dir) if bundle_dir else avatar_dir()
    bundle = _load_bundle(bundle_dir)
    h, w = bundle.portrait.shape[:2]
    _export(paste_module(bundle), (torch.zeros(1, 3, CROP, CROP),), bundle_dir / PASTE_FILE, ["face"], ["frame"],
            {"face": {0: "batch"}, "frame": {0: "batch"}})
    entry = {"file": PASTE_FILE, "input": "face", "output": "frame", "height": int(h), "width": int(w)}
    _register(bundle_dir, [PASTE_FILE], paste=entry)
    return entry


def export_audio2motion(bundle_dir=None, checkpoint=None) -> dict:
    """Write audio2motion.onnx (one streaming step) and idle.npy (if any) into the bundle; returns its manifest entry.

    `checkpoint`: a path or a loaded `a2m.Checkpoint` (default: the bundle's audio2motion.pt).
    """
    import torch

    from .a2m import CHECKPOINT_NAME, Checkpoint, load_checkpoint
    from .paths import avatar_dir

    bundle_dir = Path(bundle_dir) if bundle_dir else avatar_dir()
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint or bundle_dir / CHECKPOINT_NAME)
    model, c = ckpt.model, ckpt.config
    conv_shape, gru_shape = [1, c.conv_kernel - 1, c.hidden], [c.layers, 1, c.hidden]
    args = (torch.zeros(1, 2, c.mel_per_frame, c.n_mels), torch.zeros(*conv_shape), torch.zeros(*gru_shape),
            torch.full((1,), c.n_emotions, dtype=torch.long))
    _export(a2m_step_module(model), args, bundle_dir / A2M_FILE,
            ["features", "conv_state", "gru_state", "emotion"], ["motion", "conv_state_out", "gru_state_out"],
            {"features": {1: "chunk"}, "motion": {1: "chunk"}})
    silence = model.silence.detach().cpu().numpy()
    files = [A2M_FILE]
    entry = {"file": A2M_FILE, "lookahead_frames": int(c.lookahead_frames), "conv_state_shape": conv_shape,
             "gru_state_shape": gru_shape, "n_emotions": int(c.n_emotions), "no_emotion_id": int(c.n_emotions),
             "emotions": list(layout.EMOTIONS[:c.n_emotions]),
             "silence": float(silence.flat[0]) if np.all(silence == silence.flat[0]) else silence.tolist(),
             "feature_shape": [c.mel_per_frame, c.n_mels], "feature_params": dict(ckpt.feature_params),
             "fps": float(c.fps), "mode": ckpt.mode, "idle": None,
             "inputs": ["features", "conv_state", "gru_state", "emotion"],
             "outputs": ["motion", "conv_state_out", "gru_state_out"]}
    if ckpt.idle is not None:
        with atomic_path(bundle_dir / IDLE_FILE, suffix=".npy") as tmp:
            np.save(tmp, np.ascontiguousarray(ckpt.idle.loop, np.float32))
        entry["idle"] = {"file": IDLE_FILE, "dims": ckpt.idle.dims.tolist(), "fps": float(ckpt.idle.fps),
                         "frames": int(len(ckpt.idle.loop)),
                         "what": "loopable offsets (frames, len(dims)) added to motion[:, dims], played cyclically"}
        files.append(IDLE_FILE)
    _register(bundle_dir, files, audio2motion=entry)
    return entry


def _register(bundle_dir: Path, files, **entries) -> dict:
    """Hash `files` into manifest.json and merge `entries` into its `models` section."""
    from .bake import add_files
    from .fileio import load_json

    models = dict(load_json(bundle_dir / "manifest.json", "avatar manifest").get("models") or {})
    models.update(entries, opset=OPSET)
    return add_files(bundle_dir, files, models=models)


# ======================================================================================================================
# variants


def make_fp16(src: Path, dst: Path) -> dict:
    """float16 inside, float32 I/O (keep_io_types); GridSample, normalisation, Resize and a few others stay float32."""
    import onnx
    from onnxconverter_common import float16

    model = onnx.load(str(src))
    del model.graph.value_info[:]      # stale float32 value_info (e.g. of Cast outputs) would contradict the fp16 graph
    block = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(FP16_BLOCK))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # "the float32 number 5e-08 will be truncated to 1e-07" per tiny weight
        m16 = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=block)
    _fix_casts(m16)
    _restore_outputs(m16, model)
    onnx.checker.check_model(m16)
    _save(m16, dst)
    present = set(op_types(model))
    return {"float_ops": sorted(present & set(block)),
            "note": "float16 compute, meant for GPUs; on a CPU its speed depends on the CPU's float16 support"}


def _fix_casts(model) -> None:
    """onnxconverter-common declares some outputs of `Cast(to=float)` nodes float16 (when they feed a blocked op through
    its inserted cast) but leaves `to=float`: make the Cast agree with the declared type."""
    from onnx import TensorProto

    declared = {v.name: v.type.tensor_type.elem_type for v in model.graph.value_info}
    for n in model.graph.node:
        if n.op_type == "Cast" and declared.get(n.output[0]) == TensorProto.FLOAT16:
            for a in n.attribute:
                if a.name == "to" and a.i == TensorProto.FLOAT:
                    a.i = TensorProto.FLOAT16


def _restore_outputs(m16, model) -> None:
    """keep_io_types is not kept when a graph output comes from a blocked op (the converter casts it back to float16):
    turn such a final Cast into a cast to float32 and give every output its original type and shape."""
    from onnx import TensorProto

    orig = {o.name: o for o in model.graph.output}
    for out in m16.graph.output:
        if out.type.tensor_type.elem_type == TensorProto.FLOAT16 and out.name in orig:
            for n in m16.graph.node:
                if out.name in n.output and n.op_type == "Cast":
                    for a in n.attribute:
                        if a.name == "to":
                            a.i = TensorProto.FLOAT
        if out.name in orig:
            out.type.CopyFrom(orig[out.name].type)


class _Reader:
    """CalibrationDataReader over motions, one frame per run."""

    def __init__(self, motions):
        self.motions, self.i = np.asarray(motions, np.float32), 0

    def get_next(self):
        if self.i >= len(self.motions):
            return None
        self.i += 1
        return {"motion": self.motions[self.i - 1:self.i]}

    def rewind(self):
        self.i = 0


def int8_group(node_name: str) -> str:
    """The block a node belongs to for int8 sensitivity: the first two parts of its scope ("spade_generator/G_middle_0",
    "warping_module/dense_motion_network", "stitching/mlp"), "keypoints" for the top-level keypoint arithmetic."""
    parts = [p for p in node_name.split("/") if p]
    return "keypoints" if len(parts) <= 1 else "/".join(parts[:2])


def make_int8(src: Path, dst: Path, calibration, evaluation, min_psnr_db: float = INT8_MIN_PSNR_DB,
              sensitivity: bool = True) -> dict:
    """Static QDQ int8 of Conv/MatMul/Gemm (per channel, reduce_range for AVX2 without VNNI), MinMax calibration on
    `calibration` motions (computed once, cached).

    Sensitivity (`sensitivity=True`): each block (`int8_group`) is quantized alone and the PSNR of the renderer's output
    against the float graph is measured on `evaluation` motions; blocks below `min_psnr_db` are kept in float and the
    rest is quantized together. GridSample, normalisation and every op other than Conv/MatMul/Gemm stay float by design.
    """
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quant_pre_process,
                                          quantize_static)

    class Reader(_Reader, CalibrationDataReader):
        pass

    evaluation = np.asarray(evaluation, np.float32)[:2]
    with tempfile.TemporaryDirectory(prefix="th-int8-") as td:
        td = Path(td)
        pre, cache = td / "pre.onnx", td / "calibration.json"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        model = onnx.load(str(pre))
        groups: dict[str, list[str]] = {}
        for n in model.graph.node:
            if n.op_type in INT8_OPS:
                groups.setdefault(int8_group(n.name), []).append(n.name)
        ref = session(pre).run(None, {"motion": evaluation})[0]

        def quantize(out, include=None, exclude=()):
            quantize_static(str(pre), str(out), Reader(calibration), quant_format=QuantFormat.QDQ,
                            op_types_to_quantize=INT8_OPS, per_channel=True, reduce_range=True,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            nodes_to_quantize=include, nodes_to_exclude=list(exclude),
                            extra_options={"ActivationSymmetric": True}, calibration_cache_path=str(cache))
            return psnr(session(out).run(None, {"motion": evaluation})[0], ref)

        alone = {}
        if sensitivity:
            for g, nodes in groups.items():
                alone[g] = round(quantize(td / "one.onnx", include=nodes), 2)
        keep = [g for g, p in alone.items() if p < min_psnr_db]
        exclude = [n for g in keep for n in groups[g]]
        if len(exclude) == sum(map(len, groups.values())):
            raise TalkingHeadError("int8: every block loses too much when quantized; nothing left to quantize.")
        final = quantize(td / "final.onnx", exclude=exclude)
        qm = onnx.load(str(td / "final.onnx"))
        onnx.checker.check_model(qm)
        _save(qm, dst)
    kept_types = sorted({n.op_type for n in model.graph.node if n.name in set(exclude)})
    return {"float_ops": sorted(set(op_types(model)) - set(INT8_OPS)) + [f"{t} (kept blocks)" for t in kept_types],
            "kept_float": keep, "kept_float_nodes": len(exclude),
            "quantized_layers": sum(map(len, groups.values())) - len(exclude),
            "eligible_layers": sum(map(len, groups.values())), "min_block_psnr_db": min_psnr_db,
            "block_psnr_db": alone, "psnr_vs_onnx_fp32_db": round(final, 2),
            "policy": "Conv/MatMul/Gemm int8 (QDQ, per channel, reduce_range); GridSample, InstanceNormalization, "
                      "Resize and all other ops float; blocks below min_block_psnr_db alone kept float"}


# ======================================================================================================================
# measurements


def psnr(a, b, data_range: float = 1.0) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(data_range ** 2 / mse)


def latency_ms(sess, feeds: dict, frames: int = 5, warmup: int = 2) -> float:
    """Median wall time (ms) of one `sess.run` over `frames` runs after `warmup` runs."""
    for _ in range(warmup):
        sess.run(None, feeds)
    times = []
    for _ in range(max(1, frames)):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def latencies(paths: dict, feeds: dict, frames: int = 5, warmup: int = 2, providers=None) -> dict:
    """Median ms per run (batch 1) of several graphs, measured round-robin so that load from other processes on a
    shared machine hits every variant alike."""
    sessions = {k: session(p, providers) for k, p in paths.items()}
    for s in sessions.values():
        for _ in range(warmup):
            s.run(None, feeds)
    times = {k: [] for k in sessions}
    for _ in range(max(1, frames)):
        for k, s in sessions.items():
            t0 = time.perf_counter()
            s.run(None, feeds)
            times[k].append((time.perf_counter() - t0) * 1000)
    return {k: round(statistics.median(t), 3) for k, t in times.items()}


def evaluate_variant(path: Path, motions: np.ndarray, reference: np.ndarray) -> dict:
    """Size and error against the PyTorch output (max, mean, PSNR on [0, 1]) on `motions`, one frame per run."""
    s = session(path)
    got = np.concatenate([s.run(None, {"motion": motions[i:i + 1]})[0] for i in range(len(motions))])
    d = np.abs(got.astype(np.float64) - reference)
    return {"bytes": Path(path).stat().st_size, "max_abs_err": float(d.max()), "mean_abs_err": float(d.mean()),
            "psnr_db": round(psnr(got, reference), 2), "eval_motions": int(len(motions))}


PARITY_ATOL = 1e-4  # fp32 onnxruntime vs PyTorch, every output element (issue #6)


def parity(bundle_dir=None, lp=None, motions=None, checkpoint=None, features=None, chunk: int = 3) -> dict:
    """The parity checks (tests and notebook 05) of the exported fp32 graphs against PyTorch:

    renderer   max/mean |onnx - torch float32| on `motions`: max must be < 1e-4; both runs' distance from a float64
               PyTorch run (`onnx_vs_fp64`, `torch_vs_fp64`) are reported to show how much is plain float32 rounding
    pre_g      the same for keypoints -> W (everything before G): must be < 1e-4
    paste      paste.onnx(renderer.onnx(m)) vs BakedRenderer(paste=True)(m)
    a2m        audio2motion.onnx streamed over an utterance in chunks of `chunk` (warm-up dropped, silence flush)
               vs the offline PyTorch model (`forward`)
    Returns a dict of floats; `ok` says whether every check passed.
    """
    import torch

    from .paths import avatar_dir

    bundle_dir = Path(bundle_dir) if bundle_dir else avatar_dir()
    bundle = _load_bundle(bundle_dir)
    lp = _lp_for(bundle, lp)
    motions = random_motions(3, 7) if motions is None else np.asarray(motions, np.float32)
    module = renderer_module(lp, bundle)
    out = {}
    with torch.no_grad():
        m = torch.from_numpy(motions)
        t32 = module(m).numpy()
        m64 = copy.deepcopy(module).double()
        t64 = m64(m.double()).numpy()
        onnx_face = session(bundle_dir / RENDERER_FILES["fp32"]).run(None, {"motion": motions})[0]
        out["renderer"] = {"max_abs_err": float(np.abs(onnx_face - t32).max()),
                           "mean_abs_err": float(np.abs(onnx_face - t32).mean()),
                           "onnx_vs_fp64": float(np.abs(onnx_face - t64).max()),
                           "torch_vs_fp64": float(np.abs(t32 - t64).max())}
        out["pre_g"] = _pre_g_parity(module, motions)
        if (bundle_dir / PASTE_FILE).exists():
            full = renderer_module(lp, bundle, paste=True)
            frame = session(bundle_dir / PASTE_FILE).run(None, {"face": onnx_face})[0]
            ref = full(m).numpy()
            out["paste"] = {"max_abs_err": float(np.abs(frame - ref).max()),
                            "mean_abs_err": float(np.abs(frame - ref).mean()), "shape": list(frame.shape)}
    if (bundle_dir / A2M_FILE).exists():
        out["a2m"] = _a2m_parity(bundle_dir, checkpoint, features, chunk)
    r = out["renderer"]
    ok = r["max_abs_err"] < PARITY_ATOL and out["pre_g"]["max_abs_err"] < PARITY_ATOL
    if "paste" in out:
        ok &= out["paste"]["max_abs_err"] < PARITY_ATOL
    if "a2m" in out:
        ok &= out["a2m"]["max_abs_err"] < PARITY_ATOL
    out["ok"] = bool(ok)
    return out


def _pre_g_parity(module, motions) -> dict:
    """Export keypoints -> W alone and compare with PyTorch (shows where any renderer difference comes from)."""
    import torch

    class PreG(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.r = module

        def forward(self, motion):
            x_d = self.r.keypoints(motion)
            b = x_d.shape[0]
            return self.r.warping_module(self.r.feature_3d.expand(b, -1, -1, -1, -1), kp_driving=x_d,
                                         kp_source=self.r.x_s.expand(b, -1, -1))["out"]

    p = PreG().eval()
    with tempfile.TemporaryDirectory() as td:
        path = Path(td) / "pre_g.onnx"
        _export(p, (torch.zeros(1, layout.MOTION_DIM),), path, ["motion"], ["warped"], {"motion": {0: "b"}, "warped": {0: "b"}})
        got = session(path).run(None, {"motion": motions})[0]
    with torch.no_grad():
        ref = p(torch.from_numpy(motions)).numpy()
    return {"max_abs_err": float(np.abs(got - ref).max()), "scale": float(np.abs(ref).max())}


def stream_onnx(sess, entry: dict, features: np.ndarray, emotion: int | None = None, chunk: int = 1) -> np.ndarray:
    """Run audio2motion.onnx over a whole utterance (N, 4, 80) the way a live app does -> motion (N, 69).

    Plain numpy + onnxruntime (no torch): warm-up outputs dropped, `lookahead_frames` of silence fed at the end.
    """
    L = int(entry["lookahead_frames"])
    per, n_mels = entry["feature_shape"]
    sil = np.broadcast_to(np.asarray(entry["silence"], np.float32), (per, n_mels))
    feats = np.concatenate([np.asarray(features, np.float32), np.repeat(sil[None], L, 0)])
    conv = np.zeros(entry["conv_state_shape"], np.float32)
    gru = np.zeros(entry["gru_state_shape"], np.float32)
    emo = np.array([entry["no_emotion_id"] if emotion is None else int(emotion)], np.int64)
    outs = []
    for s in range(0, len(feats), chunk):
        y, conv, gru = sess.run(None, {"features": feats[None, s:s + chunk], "conv_state": conv, "gru_state": gru,
                                       "emotion": emo})
        outs.append(y[0])
    return np.concatenate(outs)[L:]


def _a2m_parity(bundle_dir: Path, checkpoint, features, chunk) -> dict:
    import torch

    from .a2m import CHECKPOINT_NAME, Checkpoint, load_checkpoint
    from .fileio import load_json

    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint or bundle_dir / CHECKPOINT_NAME)
    entry = load_json(bundle_dir / "manifest.json")["models"]["audio2motion"]
    c = ckpt.config
    if features is None:
        rng = np.random.default_rng(3)
        features = (ckpt.model.feat_mean.numpy() + ckpt.model.feat_std.numpy()
                    * rng.normal(0, 1, (37, c.mel_per_frame, c.n_mels))).astype(np.float32)
    s = session(bundle_dir / A2M_FILE)
    res = {}
    for emo in (None, 1):
        got = stream_onnx(s, entry, features, emo, chunk)
        with torch.no_grad():
            e = None if emo is None else torch.tensor([emo])
            ref = ckpt.model.eval()(torch.from_numpy(features)[None], e)[0].numpy()
        res["no_label" if emo is None else f"emotion_{emo}"] = float(np.abs(got - ref).max())
    return {"max_abs_err": max(res.values()), **res, "frames": int(len(features)), "chunk": int(chunk)}


# ======================================================================================================================
# the whole stage


def export_bundle(bundle_dir=None, dataset_path=None, variants=VARIANTS, progress: bool = True, lp=None,
                  checkpoint=None, n_calibration: int = 16, n_eval: int = 4, latency_frames: int = 10) -> dict:
    """Export everything (renderer variants, paste, audio2motion) into the bundle and record it in manifest.json.

    Calibration motions come from the dataset's valid frames, held-out evaluation motions from other corpus lines;
    without a dataset, small random motions around zero (`random_motions`). Returns a report: the manifest's
    `models` section, the motions' provenance, the files written and their sizes.
    """
    from .fileio import load_json
    from .paths import avatar_dir

    bundle_dir = Path(bundle_dir) if bundle_dir else avatar_dir()
    say = print if progress else (lambda *a, **k: None)
    cal, ev, how = _motions(dataset_path, n_calibration, n_eval)
    say(f"motions: {how}")
    t0 = time.perf_counter()
    export_renderer(bundle_dir, lp=lp, variants=variants, calibration=cal, evaluation=ev,
                    latency_frames=latency_frames, progress=progress)
    export_paste(bundle_dir)
    say("paste.onnx exported")
    a2m = None
    try:
        a2m = export_audio2motion(bundle_dir, checkpoint)
        say("audio2motion.onnx exported")
    except BundleError as e:
        say(f"audio2motion.onnx NOT exported: {e}")
    manifest = load_json(bundle_dir / "manifest.json")
    models = manifest["models"]
    files = [v["file"] for v in models["renderer"]["variants"].values()] + [PASTE_FILE]
    if a2m:
        files += [A2M_FILE] + ([IDLE_FILE] if a2m.get("idle") else [])
    return {"bundle": str(bundle_dir), "models": models, "motions": how, "seconds": time.perf_counter() - t0,
            "files": {f: manifest["files"][f]["bytes"] for f in files}, "profile": manifest.get("profile")}


def variant_table(report: dict) -> str:
    """A plain-text table of the renderer variants (size, error vs PyTorch, PSNR, CPU latency, use)."""
    models = report.get("models", report)
    rows = [("variant", "file", "MB", "max err", "mean err", "PSNR dB", "CPU ms/frame", "for")]
    variants = models["renderer"]["variants"]
    for v in sorted(variants, key=lambda k: VARIANTS.index(k) if k in VARIANTS else 99):
        d = variants[v]
        rows.append((v, d["file"], f"{d['bytes'] / 1e6:.2f}", f"{d['max_abs_err']:.2e}", f"{d['mean_abs_err']:.2e}",
                     f"{d['psnr_db']:.1f}" if math.isfinite(d["psnr_db"]) else "inf", f"{d['latency_ms']:.1f}",
                     d.get("use", "")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_variants(bundle_dir, motion, variants=None) -> dict:
    """One motion (69,) through each exported renderer variant -> {variant: face (512, 512, 3) float in [0, 1]}."""
    from .fileio import load_json

    bundle_dir = Path(bundle_dir)
    entry = load_json(bundle_dir / "manifest.json")["models"]["renderer"]["variants"]
    m = np.asarray(motion, np.float32).reshape(1, layout.MOTION_DIM)
    return {v: session(bundle_dir / d["file"]).run(None, {"motion": m})[0][0].transpose(1, 2, 0)
            for v, d in entry.items() if variants is None or v in variants}


__all__ = ["export_bundle", "export_renderer", "export_paste", "export_audio2motion", "parity", "variant_table",
           "random_motions", "dataset_motions", "renderer_module", "paste_module",
           "stream_onnx", "render_variants", "make_fp16", "make_int8", "session", "OPSET", "RENDERER_FILES"]
