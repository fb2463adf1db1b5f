"""Writing ONNX graphs: export a torch module (TorchScript exporter, opset `OPSET`), fold what does not depend on the
input, simplify with onnxruntime's basic offline optimisation, check, and save atomically (notebooks/05_export.ipynb).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from .. import onnxrt
from ..fileio import atomic_path

OPSET = 20     # 5-D GridSample (the warping) needs opset 20


def export_graph(module, args, path: Path, input_names, output_names, dynamic_axes) -> Path:
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
        save_model(model, path)
    return path


def fold_input_independent(model, max_elements: int = 1 << 22):
    """Replace the tensors that depend neither on the input values nor on the dynamic axes by constants.

    The tracer records shape arithmetic (e.g. the warping's identity grid is built from the feature volume's D, H, W
    via Shape -> Gather -> Cast -> Range); with a dynamic batch axis neither onnxruntime's nor onnx's constant folding
    can evaluate it, although only the batch entry of those shapes is dynamic. Here: tensors that do not depend on
    input *values* (a taint walk that stops at Shape) are computed at two batch sizes (1 and 3); those equal at both
    (and at most `max_elements` long) become initializers, and the nodes that only fed them are dropped.
    """
    g = model.graph
    inputs = [i for i in g.input if i.name not in {t.name for t in g.initializer}]
    tainted = {i.name for i in inputs}
    for n in g.node:                                      # nodes are topologically sorted
        if n.op_type not in ("Shape", "Size") and any(x in tainted for x in n.input):
            tainted.update(n.output)
    cands = [o for n in g.node for o in n.output if o and o not in tainted]
    if not cands:
        return model
    run = _tensor_evaluator(model, inputs, cands)
    a, b = run(1), run(3)
    fold = {t for t in cands if t in a and a[t].shape == b[t].shape and a[t].size <= max_elements
            and np.array_equal(a[t], b[t])}
    _replace_with_constants(g, fold, a)
    return model


def _tensor_evaluator(model, inputs, names):
    """run(batch) -> {name: value} of the graph's intermediate tensors `names`, computed on zero inputs whose
    dynamic axes are all `batch` (one onnxruntime session, without graph optimisation, for every call)."""
    import onnx

    aug = onnx.ModelProto()
    aug.CopyFrom(model)
    del aug.graph.output[:]               # only the candidates: the rest of the network is not run
    for t in names:
        aug.graph.output.append(onnx.helper.make_empty_tensor_value_info(t))
    rt = onnxrt.ort()
    so = rt.SessionOptions()
    so.graph_optimization_level = rt.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = onnxrt.session(aug.SerializeToString(), options=so)
    outputs = [o.name for o in sess.get_outputs()]

    def run(batch: int) -> dict:
        feeds = {}
        for i in inputs:
            tt = i.type.tensor_type
            shape = [batch if (d.dim_param or not d.dim_value) else d.dim_value for d in tt.shape.dim]
            feeds[i.name] = np.zeros(shape, onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type))
        return dict(zip(outputs, sess.run(None, feeds)))

    return run


def _replace_with_constants(g, fold: set, values: dict) -> None:
    """Drop the nodes of graph `g` whose every output is in `fold`; the folded tensors that kept nodes (or the graph's
    outputs) still read become initializers from `values`; unused initializers and stale value_info are removed."""
    from onnx import numpy_helper

    consumed_by_kept = set()
    keep_nodes = []
    for n in g.node:
        if all(o in fold for o in n.output if o):
            continue
        keep_nodes.append(n)
        consumed_by_kept.update(n.input)
    consumed_by_kept.update(o.name for o in g.output)
    new_inits = [numpy_helper.from_array(np.asarray(values[t]), t) for t in sorted(fold & consumed_by_kept)]
    del g.node[:]
    g.node.extend(keep_nodes)
    g.initializer.extend(new_inits)
    used = {x for n in g.node for x in n.input} | {o.name for o in g.output}
    kept_inits = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(kept_inits)
    del g.value_info[:]


def simplify(src: Path, dst: Path) -> None:
    """Constant folding and redundant-node elimination by onnxruntime's basic offline optimisation (standard ops only)."""
    rt = onnxrt.ort()
    so = rt.SessionOptions()
    so.graph_optimization_level = rt.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.optimized_model_filepath = str(dst)
    onnxrt.session(src, options=so)


def save_model(model, path: Path) -> None:
    """Write an onnx ModelProto to `path` atomically (a temporary name, then renamed)."""
    import onnx

    with atomic_path(path, suffix=".onnx") as tmp:
        onnx.save(model, str(tmp))


def session(path, providers=None, threads: int | None = None):
    """An onnxruntime InferenceSession (CPU unless `providers`), quiet: `talkinghead.onnxrt.session`."""
    return onnxrt.session(path, providers, threads)


def op_types(model_or_path) -> list[str]:
    """Sorted distinct op types of a graph."""
    import onnx

    m = onnx.load(str(model_or_path)) if not hasattr(model_or_path, "graph") else model_or_path
    return sorted({n.op_type for n in m.graph.node})
