"""Smaller variants of the fp32 renderer graph (notebooks/05_export.ipynb): float16 inside with float32 I/O (for
GPUs) and static QDQ int8 of Conv/MatMul/Gemm with a per-block sensitivity check (for CPUs)."""
from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np

from ..errors import TalkingHeadError
from ..progress import Estimate
from .graph import op_types, save_model, session
from .measure import psnr

# Ops kept in float16-free float32 in the fp16 variant: sampling, normalisation (variance overflows fp16) and resize.
FP16_BLOCK = ["GridSample", "InstanceNormalization", "BatchNormalization", "Resize", "Softmax", "ReduceMean",
              "Exp", "Sigmoid"]
INT8_OPS = ["Conv", "MatMul", "Gemm"]
INT8_MIN_PSNR_DB = 35.0     # default: a block whose quantization alone brings the face below this PSNR stays float


def make_fp16(src: Path, dst: Path) -> dict:
    """float16 inside, float32 I/O (keep_io_types); GridSample, normalisation, Resize and a few others stay float32."""
    import onnx
    from onnxconverter_common import float16

    model = onnx.load(str(src))
    del model.graph.value_info[:]      # stale float32 value_info (e.g. of Cast outputs) would contradict the fp16 graph
    block = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(FP16_BLOCK))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # "the float32 number 5e-08 will be truncated to 1e-07" per tiny weight
        m16 = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=block)
    _fix_casts(m16)
    _restore_outputs(m16, model)
    onnx.checker.check_model(m16)
    save_model(m16, dst)
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
              sensitivity: bool = True, progress: bool = False) -> dict:
    """Static QDQ int8 of Conv/MatMul/Gemm (per channel, reduce_range for AVX2 without VNNI), MinMax calibration on
    `calibration` motions (computed once, cached). `progress`: a bar over the blocks, and the estimate when long.

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
            from tqdm.auto import tqdm

            est = Estimate("int8 sensitivity", len(groups) + 1, "block", enabled=progress)
            for g, nodes in tqdm(groups.items(), desc="int8 blocks", unit="block", disable=not progress):
                alone[g] = round(quantize(td / "one.onnx", include=nodes), 2)
                est.update(1)
        keep = [g for g, p in alone.items() if p < min_psnr_db]
        exclude = [n for g in keep for n in groups[g]]
        if len(exclude) == sum(map(len, groups.values())):
            raise TalkingHeadError("int8: every block loses too much when quantized; nothing left to quantize.")
        final = quantize(td / "final.onnx", exclude=exclude)
        qm = onnx.load(str(td / "final.onnx"))
        onnx.checker.check_model(qm)
        save_model(qm, dst)
    kept_types = sorted({n.op_type for n in model.graph.node if n.name in set(exclude)})
    return {"float_ops": sorted(set(op_types(model)) - set(INT8_OPS)) + [f"{t} (kept blocks)" for t in kept_types],
            "kept_float": keep, "kept_float_nodes": len(exclude),
            "quantized_layers": sum(map(len, groups.values())) - len(exclude),
            "eligible_layers": sum(map(len, groups.values())), "min_block_psnr_db": min_psnr_db,
            "block_psnr_db": alone, "psnr_vs_onnx_fp32_db": round(final, 2),
            "policy": "Conv/MatMul/Gemm int8 (QDQ, per channel, reduce_range); GridSample, InstanceNormalization, "
                      "Resize and all other ops float; blocks below min_block_psnr_db alone kept float"}
