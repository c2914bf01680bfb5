"""Stamp the graph contract onto an exported graph: its inputs and outputs get exactly the names, order,
element types and shapes that :mod:`uniparser_sdk.contract.layouts` declares for the layout.

Tracing and onnxsim leave fixed dimensions (K, C, D, S) as generated symbols (``Castgrid_index_dim_1``)
and may rename dynamic ones; consumers (ONNX Runtime, TensorRT's profiles, Triton's config.pbtxt, the
contract test) read the declared form, so the exporter writes it: fixed symbols resolved from the model,
dynamic axes named by the contract's symbols. A name or element type that differs from the declaration is
an export bug and raises.
"""
from __future__ import annotations

from uniparser_sdk.contract import ModelMeta
from uniparser_sdk.contract.layouts import DYNAMIC_SYMBOLS

_ONNX_TYPES = {"float32": 1, "uint8": 2, "int32": 6, "int64": 7, "float16": 10}


def contract_sizes(meta: ModelMeta) -> dict:
    """Values of the fixed symbols for this model."""
    cfg = meta.config or {}
    return {"K": int(meta.decode.get("max_instances", 100)), "C": int(cfg.get("num_classes", 1)) - 1,
            "D": int(cfg.get("head_channels", 128)), "S": int(cfg.get("num_grid", 40)), "P": 3}


def declare_io(proto, meta: ModelMeta) -> None:
    """In place: the graph's inputs (initializers excluded) and outputs in the declared form."""
    from .onnx_export import ExportError

    layout = meta.contract
    sizes = contract_sizes(meta)
    inits = {t.name for t in proto.graph.initializer}
    inputs = [vi for vi in proto.graph.input if vi.name not in inits]
    for kind, vis, specs in (("input", inputs, layout.inputs), ("output", list(proto.graph.output), layout.outputs)):
        names = [vi.name for vi in vis]
        if names != [s.name for s in specs]:
            raise ExportError(f"{layout.name} graph {kind}s are {names}, the contract declares "
                              f"{[s.name for s in specs]}")
        for vi, spec in zip(vis, specs):
            tt = vi.type.tensor_type
            if tt.elem_type != _ONNX_TYPES[spec.dtype]:
                raise ExportError(f"{layout.name} {kind} {spec.name}: element type {tt.elem_type}, the contract "
                                  f"declares {spec.dtype}")
            del tt.shape.dim[:]
            for d in spec.shape:
                dim = tt.shape.dim.add()
                if isinstance(d, int):
                    dim.dim_value = d
                elif d in DYNAMIC_SYMBOLS:
                    dim.dim_param = d
                else:
                    dim.dim_value = sizes[d]
