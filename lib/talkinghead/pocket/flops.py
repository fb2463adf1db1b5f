"""FLOPs per frame of an ONNX graph, counted op by op (notebooks/07_pocket_renderer.ipynb, benchmarks/bench_pocket.py).

Shapes come from running the graph once at batch 1 with every intermediate tensor exposed (exact, whatever the
shape inference can or cannot prove). One multiply-add is 2 FLOPs. Counted:

    Conv                2 * output elements * (input channels / groups) * kernel area (+ 1 per output with a bias)
    MatMul, Gemm        2 * M * N * K per matrix product (+ M * N for Gemm's bias)
    GridSample          bilinear: 4 taps, a multiply-add each, per output element (8 FLOPs) + 10 per sampled
                        location for the coordinate arithmetic; nearest: 0
    Resize              linear: 8 FLOPs per output element of a 2-D resize (4 taps); nearest: 0
    pointwise ops       1 FLOP per float output element (Add, Mul, Tanh, Sigmoid, Erf, Clip, ...: a transcendental
                        counts 1; integer shape arithmetic is not counted)
    ReduceMean & co.    1 per input element
    data movement       0 (Reshape, Slice, Concat, Pad, Transpose, Expand, Gather, Cast, Shape, DepthToSpace
                        (a pixel shuffle), ...: `MOVEMENT`)

An op in none of these lists counts 0 and is named in `count_onnx(...)["unknown"]`, so a new op cannot hide.

For the released-size renderer the intermediates are too large to expose at once: use `count_torch` (convolutions
and matmuls only, torch's FlopCounterMode, as benchmarks/bench_export.py does) to compare the two like with like.
"""
from __future__ import annotations

import math

import numpy as np

from .. import onnxrt

POINTWISE = {"Add", "Sub", "Mul", "Div", "Tanh", "Sigmoid", "Erf", "Relu", "LeakyRelu", "Clip", "Pow", "Sqrt",
             "Exp", "Log", "Neg", "Abs", "Min", "Max", "Where", "Softplus", "Gelu", "HardSigmoid", "Sin", "Cos",
             "Reciprocal", "Floor", "Ceil", "Round", "BatchNormalization", "InstanceNormalization", "Softmax",
             "DequantizeLinear", "QuantizeLinear", "Mod"}
REDUCE = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceL2", "ReduceSumSquare"}
MOVEMENT = {"Reshape", "Slice", "Concat", "Pad", "Transpose", "Expand", "Gather", "Cast", "Shape", "Unsqueeze",
            "Squeeze", "Flatten", "Split", "Identity", "Constant", "ConstantOfShape", "Range", "Equal", "Tile",
            "DepthToSpace", "SpaceToDepth"}
COUNTED = {"Conv", "ConvInteger", "QLinearConv", "MatMul", "MatMulInteger", "Gemm", "GridSample", "Resize"}


def _shapes(model, feeds: dict) -> dict:
    """{tensor name: shape} of every tensor of the graph when run on `feeds` (intermediates exposed)."""
    import onnx

    ort = onnxrt.ort()
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for n in m.graph.node:
        for o in n.output:
            if o and o not in have:
                m.graph.output.append(onnx.helper.make_empty_tensor_value_info(o))
                have.add(o)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL   # every node's output as written
    sess = onnxrt.session(m.SerializeToString(), options=so)
    names = [o.name for o in sess.get_outputs()]
    values = dict(zip(names, sess.run(None, feeds)), **feeds)
    shapes = {k: tuple(v.shape) for k, v in values.items()}
    for t in m.graph.initializer:
        shapes[t.name] = tuple(t.dims)
    shapes["__float__"] = {k for k, v in values.items() if np.issubdtype(v.dtype, np.floating)}
    return shapes


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            import onnx
            return onnx.helper.get_attribute_value(a)
    return default


def node_flops(node, shapes: dict) -> int:
    """FLOPs of one node (see the module docstring)."""
    op = node.op_type
    out = shapes.get(node.output[0], ())
    n_out = math.prod(out) if out else 0
    if op in ("Conv", "ConvInteger", "QLinearConv"):
        w = shapes[node.input[1] if op != "QLinearConv" else node.input[3]]
        per = w[1] * math.prod(w[2:])
        bias = len(node.input) > 2 and bool(node.input[2]) and op == "Conv"
        return 2 * n_out * per + (n_out if bias else 0)
    if op in ("MatMul", "MatMulInteger", "Gemm"):
        a = shapes[node.input[0]]
        k = a[0] if op == "Gemm" and _attr(node, "transA", 0) else a[-1]
        return 2 * n_out * k + (n_out if op == "Gemm" and len(node.input) > 2 else 0)
    if op == "GridSample":
        if _attr(node, "mode", b"linear") in (b"nearest", "nearest"):
            return 0
        locations = n_out // out[1] if len(out) > 1 and out[1] else 0
        return 8 * n_out + 10 * locations
    if op == "Resize":
        return 0 if _attr(node, "mode", b"nearest") in (b"nearest", "nearest") else 8 * n_out
    if op in POINTWISE:         # shape arithmetic on integers is not counted
        return n_out if node.output[0] in shapes.get("__float__", ()) else 0
    if op in REDUCE:
        return math.prod(shapes.get(node.input[0], ()) or (0,))
    return 0


def count_onnx(model_or_path, input_name: str = "motion", input_shape=(1, 69)) -> dict:
    """{"total": FLOPs per frame, "by_op": {op: FLOPs}, "unknown": [op types this counter does not know (counted
    0)]} of a graph run once on zeros of `input_shape`."""
    import onnx

    model = model_or_path if hasattr(model_or_path, "graph") else onnx.load(str(model_or_path))
    shapes = _shapes(model, {input_name: np.zeros(input_shape, np.float32)})
    by_op: dict[str, int] = {}
    for n in model.graph.node:
        f = node_flops(n, shapes)
        if f:
            by_op[n.op_type] = by_op.get(n.op_type, 0) + f
    batch = input_shape[0] or 1
    known = POINTWISE | REDUCE | MOVEMENT | COUNTED
    return {"total": sum(by_op.values()) / batch, "by_op": {k: v / batch for k, v in sorted(by_op.items())},
            "unknown": sorted({n.op_type for n in model.graph.node} - known)}


def count_torch(module, input_shape=(1, 69)) -> float:
    """Convolution and matmul FLOPs per frame of a torch module (torch's FlopCounterMode), for like-with-like
    comparison with the full renderer (benchmarks/bench_export.py counts it this way)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    p = next(module.parameters())
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        module(torch.zeros(*input_shape, device=p.device))
    return float(fc.get_total_flops()) / input_shape[0]


__all__ = ["count_onnx", "count_torch", "node_flops"]
