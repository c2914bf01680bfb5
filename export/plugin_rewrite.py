"""Rewrite a raw-v1 ONNX graph into the plugin-v1 variant: the network plus ONE fused decode node.

The node is mapped by TensorRT's ONNX parser to the ``UniParserDecode`` plugin (kernels/): the parser
dispatches on the node's ``op_type`` alone -- a type it has no importer for goes to its fallback plugin
importer, which looks up a registered plugin creator with that name, the ``plugin_version``
attribute (default "1") and the ``plugin_namespace`` attribute, and passes every other attribute to
the creator as a plugin field. The node's *domain* is not consulted by that lookup, so we put the
node in the custom domain ``uniparser`` (declared in ``opset_import``): with the default domain,
``onnx.checker`` rejects the file ("No Op registered for UniParserDecode"). ONNX Runtime has no kernel
for the node; this variant is for TensorRT only.

Contract: :mod:`uniparser_sdk.fused` (``PLUGIN_*`` constants, written with the plugin in kernels/):

inputs   center_logits  float32 (B, 1, S, S)
         ins_feats      float32 (B, D, h, w)
         sem_feats      float32 (B, D, h, w)
         seg_kernels    float32 (C, D)            initializer (the model's category kernels)
outputs  scores         float32 (B, K)            descending, 0 beyond num_instances
         num_instances  int32   (B,)
         part_maps      int32   (B, K, 4h, w)     uint8 labels (B, K, 4h, 4w) packed 4 per int32 (TensorRT
                                                  plugins cannot output UINT8); unpack with
                                                  uniparser_sdk.fused.unpack_part_maps. Padded input
                                                  resolution (light models: 4h = Hp + 8); 0 beyond the count
attributes plugin_version "1", plugin_namespace "uniparser", max_instances (int),
           ctr_score, mask_thr, cate_score_thr (float)
"""
from __future__ import annotations

import numpy as np

from uniparser_sdk.contract.layouts import (BATCH, FEAT_H, FEAT_W, PART_H, PART_W, PLUGIN_INPUTS, PLUGIN_NAME,
                                            PLUGIN_NAMESPACE, PLUGIN_OUTPUTS, PLUGIN_V1, PLUGIN_VERSION)
from uniparser_sdk.contract.layouts import plugin_attributes as _contract_attributes
from uniparser_sdk.errors import UserInputError

__all__ = ["PLUGIN_NAME", "PLUGIN_VERSION", "PLUGIN_NAMESPACE", "PLUGIN_DOMAIN", "PluginRewriteError",
           "rewrite_to_plugin", "plugin_nodes", "plugin_attributes"]

PLUGIN_DOMAIN = "uniparser"
PLUGIN_DOMAIN_VERSION = 1
RAW_INPUTS = tuple(PLUGIN_INPUTS[:3])  # center_logits, ins_feats, sem_feats: the raw-v1 outputs
SEG_KERNELS = PLUGIN_INPUTS[3]
MAX_CLASSES = 255  # labels c + 1 must fit in uint8


class PluginRewriteError(UserInputError):
    pass


def _batch_dim(graph):
    for vi in graph.input:
        if vi.name == "images":
            d = vi.type.tensor_type.shape.dim[0]
            return d.dim_param if d.HasField("dim_param") else (d.dim_value or "batch")
    return "batch"


def _static_dim(graph, name, axis):
    for vi in list(graph.output) + list(graph.value_info):
        if vi.name == name:
            dims = vi.type.tensor_type.shape.dim
            if len(dims) > axis and dims[axis].HasField("dim_value"):
                return dims[axis].dim_value
    return None


_DTYPES = {"float32": 1, "uint8": 2, "int32": 6, "int64": 7}  # onnx.TensorProto element types


def _output_infos(graph, raw_outputs, k: int) -> list:
    """Graph outputs from the contract's specs; symbols batch, K, feat_*, part_* resolved against the
    raw graph's own dimension names (batch from ``images``, h/w from ``ins_feats``)."""
    from onnx import helper

    feat = next((vi for vi in raw_outputs if vi.name == "ins_feats"), None)
    fdims = list(feat.type.tensor_type.shape.dim) if feat is not None else []

    def dim_name(i, default):
        if len(fdims) > i:
            d = fdims[i]
            return d.dim_param if d.HasField("dim_param") else (d.dim_value or default)
        return default

    symbols = {BATCH: _batch_dim(graph), "K": k, FEAT_H: dim_name(2, FEAT_H), FEAT_W: dim_name(3, FEAT_W),
               PART_H: PART_H, PART_W: PART_W}
    infos = []
    for spec in PLUGIN_V1.outputs:
        infos.append(helper.make_tensor_value_info(spec.name, _DTYPES[spec.dtype],
                                                   [symbols.get(s, s) for s in spec.shape]))
    return infos


def rewrite_to_plugin(raw_model, seg_kernels, *, max_instances: int, ctr_score: float, mask_thr: float,
                      cate_score_thr: float, domain: str = PLUGIN_DOMAIN):
    """Return a copy of ``raw_model`` (outputs center_logits, ins_feats, sem_feats) with one
    ``UniParserDecode`` node appended and the plugin's three outputs as the graph outputs."""
    import onnx
    from onnx import helper, numpy_helper

    out_names = [o.name for o in raw_model.graph.output]
    if sorted(out_names) != sorted(RAW_INPUTS):
        raise PluginRewriteError(f"expected a raw-v1 graph with outputs {list(RAW_INPUTS)}, got {out_names}")
    if any(n.op_type == PLUGIN_NAME for n in raw_model.graph.node):
        raise PluginRewriteError(f"the graph already has a {PLUGIN_NAME} node")
    seg = np.asarray(seg_kernels, dtype=np.float32)
    if seg.ndim != 2 or not 1 <= seg.shape[0] <= MAX_CLASSES:
        raise PluginRewriteError(f"seg_kernels must be (C, D) with 1 <= C <= {MAX_CLASSES}, got {seg.shape}")
    d = _static_dim(raw_model.graph, "ins_feats", 1)
    if d is not None and d != seg.shape[1]:
        raise PluginRewriteError(f"seg_kernels has {seg.shape[1]} channels, ins_feats {d}")
    if not 1 <= int(max_instances):
        raise PluginRewriteError(f"max_instances must be >= 1, got {max_instances}")

    model = onnx.ModelProto()
    model.CopyFrom(raw_model)
    g = model.graph
    taken = {i.name for i in g.initializer} | {o for n in g.node for o in n.output}
    if SEG_KERNELS in taken:
        raise PluginRewriteError(f"the graph already defines a tensor named {SEG_KERNELS!r}")
    g.initializer.append(numpy_helper.from_array(seg, SEG_KERNELS))
    attrs = _contract_attributes(max_instances, ctr_score, mask_thr, cate_score_thr)
    node = helper.make_node(PLUGIN_NAME, inputs=[*RAW_INPUTS, SEG_KERNELS], outputs=list(PLUGIN_OUTPUTS),
                            name=PLUGIN_NAME, domain=domain, **attrs)
    g.node.append(node)
    raw_outputs = list(g.output)
    del g.output[:]
    g.value_info.extend(vi for vi in raw_outputs if vi.name not in {v.name for v in g.value_info})
    g.output.extend(_output_infos(g, raw_outputs, int(max_instances)))
    if domain and not any(op.domain == domain for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid(domain, PLUGIN_DOMAIN_VERSION))
    return model


def plugin_nodes(model) -> list:
    return [n for n in model.graph.node if n.op_type == PLUGIN_NAME]


def plugin_attributes(node) -> dict:
    from onnx import helper

    return {a.name: (v.decode() if isinstance(v := helper.get_attribute_value(a), bytes) else v)
            for a in node.attribute}
