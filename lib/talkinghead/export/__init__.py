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

Parity of every fp32 graph with PyTorch: `parity` (see `checks`). Without a dataset, calibration and evaluation motions
are small random motions around zero (`random_motions`).

    modules    export_networks, renderer_module, paste_module, a2m_step_module: the torch modules that are exported
    graph      export_graph, fold_input_independent, simplify, save_model, session, op_types, OPSET
    variants   make_fp16, make_int8 (+ int8_group), FP16_BLOCK, INT8_OPS, INT8_MIN_PSNR_DB (default of `min_psnr_db`)
    measure    psnr, latency_ms, latencies, evaluate_variant
    motions    random_motions, dataset_motions, motions_for (calibration / evaluation motions)
    checks     parity (+ PARITY_ATOL, default of `atol`), stream_onnx
    stage      export_renderer, export_paste, export_audio2motion, export_bundle, variant_table, render_variants,
               load_lp, load_a2m_checkpoint, VARIANTS

Every public name is importable from `talkinghead.export` itself. Importing it imports neither torch nor onnx: like
them, the sibling modules that import torch (`a2m`, `render`, `liveportrait`) are imported inside the functions that
need them. The bundle's file names and manifest come from `talkinghead.bundle`.
"""
from __future__ import annotations

from ..bundle import A2M_FILE, IDLE_FILE, PASTE_FILE, RENDERER_FILES
from .checks import PARITY_ATOL, parity, stream_onnx
from .graph import OPSET, export_graph, fold_input_independent, op_types, save_model, session, simplify
from .measure import evaluate_variant, latencies, latency_ms, psnr
from .modules import a2m_step_module, export_networks, paste_module, renderer_module
from .motions import dataset_motions, motions_for, random_motions
from .stage import VARIANT_USE, VARIANTS, export_audio2motion, export_bundle, export_paste, export_renderer, \
    load_a2m_checkpoint, load_lp, render_variants, variant_table
from .variants import FP16_BLOCK, INT8_MIN_PSNR_DB, INT8_OPS, int8_group, make_fp16, make_int8

__all__ = ["export_bundle", "export_renderer", "export_paste", "export_audio2motion", "parity", "variant_table",
           "random_motions", "dataset_motions", "motions_for", "renderer_module", "paste_module", "a2m_step_module",
           "export_networks", "stream_onnx", "render_variants", "make_fp16", "make_int8", "int8_group", "session",
           "export_graph", "fold_input_independent", "simplify", "save_model", "op_types", "psnr", "latency_ms",
           "latencies", "evaluate_variant", "load_lp", "load_a2m_checkpoint", "OPSET", "RENDERER_FILES",
           "PASTE_FILE", "A2M_FILE", "IDLE_FILE", "VARIANTS", "VARIANT_USE", "FP16_BLOCK", "INT8_OPS",
           "INT8_MIN_PSNR_DB", "PARITY_ATOL"]
