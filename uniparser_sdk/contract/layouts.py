"""THE graph contract: one declaration per output layout of an exported UniParser model.

Each :class:`Layout` lists its inputs and outputs (name, dtype, shape with symbolic dimensions), which
dimensions are dynamic, how the run-time thresholds reach the graph and how many instance slots (K) it
has. Exporters name their tensors from here, parity compares what is declared here, every backend and
the numpy finishing read outputs by these names; no other module spells an output name.

Shape symbols:

=====================  ========  =================================================================
symbol                 dynamic   meaning
=====================  ========  =================================================================
``batch``              yes       B, images per call
``height``/``width``   yes       padded input size (multiples of 32)
``feat_height``/...    yes       stride-4 head feature size (light models: +2 on each axis)
``part_height``/...    yes       4 x feature size (the plugin's label maps)
``K``                  no        instance slots (``max_instances`` in the metadata)
``C``                  no        num_classes - 1 (categories without background)
``D``                  no        feature channels (128)
``S``                  no        grid size (40)
``P``                  no        number of decode thresholds (3, :data:`DECODE_PARAM_ORDER`)
=====================  ========  =================================================================
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import numpy as np

from .constants import DECODE_PARAM_ORDER
from ..errors import UserInputError

BATCH, HEIGHT, WIDTH = "batch", "height", "width"
FEAT_H, FEAT_W = "feat_height", "feat_width"
PART_H, PART_W = "part_height", "part_width"
DYNAMIC_SYMBOLS = (BATCH, HEIGHT, WIDTH, FEAT_H, FEAT_W, PART_H, PART_W)
FIXED_SYMBOLS = ("K", "C", "D", "S", "P")


class UnknownLayoutError(UserInputError):
    """A model file names an output layout this SDK does not know."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name: float32, float16, int64, int32, uint8
    shape: tuple  # ints and symbols (see the module docstring)
    doc: str = ""

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def dynamic_axes(self) -> dict[int, str]:
        return {i: d for i, d in enumerate(self.shape) if d in DYNAMIC_SYMBOLS}

    def resolve(self, sizes: Mapping[str, int]) -> tuple:
        """The shape with the fixed symbols replaced by ``sizes`` (dynamic symbols stay strings)."""
        return tuple(sizes.get(d, d) if isinstance(d, str) and d not in DYNAMIC_SYMBOLS else d
                     for d in self.shape)


@dataclass(frozen=True)
class Layout:
    name: str
    inputs: tuple
    outputs: tuple
    thresholds: str  # how thresholds reach the graph: "input" (decode_params), "attributes" (plugin node), "host"
    has_slots: bool  # fixed K instance slots plus a count
    description: str
    #: intermediate tensors an exporter keeps under these names (value_info) so parity can read them
    internals: tuple = ()

    @property
    def input_names(self) -> tuple:
        return tuple(t.name for t in self.inputs)

    @property
    def output_names(self) -> tuple:
        return tuple(t.name for t in self.outputs)

    def spec(self, name: str) -> TensorSpec:
        for t in self.inputs + self.outputs + self.internals:
            if t.name == name:
                return t
        raise KeyError(f"layout {self.name} declares no tensor {name!r}")

    def dynamic_axes(self, names: Optional[Sequence[str]] = None) -> dict:
        """``torch.onnx.export`` ``dynamic_axes`` for the named tensors (default: inputs + outputs)."""
        specs = self.inputs + self.outputs + self.internals
        wanted = set(names) if names is not None else {t.name for t in self.inputs + self.outputs}
        return {t.name: t.dynamic_axes for t in specs if t.name in wanted and t.dynamic_axes}

    def check_outputs(self, outputs: Mapping[str, np.ndarray], names: Optional[Sequence[str]] = None) -> None:
        """Raise a ValueError naming what a backend's outputs lack for this layout (``names``: only these
        of its outputs are needed; default all)."""
        missing = [n for n in (self.output_names if names is None else names) if n not in outputs]
        if missing:
            raise ValueError(f"{self.name} outputs are missing {missing}; got {sorted(outputs)}")


_IMAGES = TensorSpec("images", "float32", (BATCH, 3, HEIGHT, WIDTH), "normalised input, padded to multiples of 32")
_RAW = (
    TensorSpec("center_logits", "float32", (BATCH, 1, "S", "S"), "center heatmap logits"),
    TensorSpec("ins_feats", "float32", (BATCH, "D", FEAT_H, FEAT_W), "instance features"),
    TensorSpec("sem_feats", "float32", (BATCH, "D", FEAT_H, FEAT_W), "semantic features"),
)

PRODUCTS_V1 = Layout(
    name="products-v1",
    inputs=(_IMAGES, TensorSpec("decode_params", "float32", ("P",), "[ctr_score, mask_thr, cate_score_thr]")),
    outputs=(
        TensorSpec("scores", "float32", (BATCH, "K"), "descending; 0 beyond num_instances"),
        TensorSpec("num_instances", "int64", (BATCH,), "valid slots per image"),
        TensorSpec("grid_index", "int64", (BATCH, "K"), "flat S x S center cell, -1 beyond the count"),
        TensorSpec("instance_masks", "uint8", (BATCH, "K", FEAT_H, FEAT_W), "Q_ins > mask_thr, 0 beyond the count"),
        TensorSpec("keep", "uint8", (BATCH, "K", "C"), "maskness > cate_score_thr, 0 beyond the count"),
        TensorSpec("cat_conf", "float32", (BATCH, "C", FEAT_H, FEAT_W), "category cosine maps Q_cat"),
    ),
    thresholds="input", has_slots=True, internals=_RAW,
    description="network + decode steps 1-4 in standard ONNX ops; the host finishes step 5 per person",
)

PRODUCTS_V2 = Layout(
    name="products-v2",
    inputs=(_IMAGES, TensorSpec("decode_params", "float32", (BATCH, "P"),
                                "one row [ctr_score, mask_thr, cate_score_thr] per image")),
    outputs=PRODUCTS_V1.outputs,
    thresholds="input", has_slots=True, internals=_RAW,
    description="products-v1 with per-image thresholds: decode_params (batch, 3), so servers that stack "
                "requests along the batch axis (Triton's dynamic batcher) can batch it",
)
#: layouts whose outputs are the products-v1 tensors (one finishing for all of them)
PRODUCTS_LAYOUTS = (PRODUCTS_V1.name, PRODUCTS_V2.name)

RAW_V1 = Layout(
    name="raw-v1", inputs=(_IMAGES,), outputs=_RAW, thresholds="host", has_slots=False,
    description="network only; the host runs the whole decode (seg_kernels from the metadata)",
)

PLUGIN_V1 = Layout(
    name="plugin-v1", inputs=(_IMAGES,),
    outputs=(
        TensorSpec("scores", "float32", (BATCH, "K"), "descending; 0 beyond num_instances"),
        TensorSpec("num_instances", "int32", (BATCH,), "valid slots per image"),
        TensorSpec("part_maps", "int32", (BATCH, "K", PART_H, FEAT_W),
                   "uint8 labels (B, K, 4h, 4w) packed four to an int32 (TensorRT plugins have no UINT8 I/O)"),
    ),
    thresholds="attributes", has_slots=True, internals=_RAW,
    description="network + the fused UniParserDecode TensorRT plugin node; part labels at the padded size",
)

LAYOUTS = {lay.name: lay for lay in (PRODUCTS_V1, PRODUCTS_V2, RAW_V1, PLUGIN_V1)}
LAYOUT_PRODUCTS, LAYOUT_RAW, LAYOUT_PLUGIN = PRODUCTS_V1.name, RAW_V1.name, PLUGIN_V1.name
LAYOUT_PRODUCTS_V2 = PRODUCTS_V2.name


def get_layout(name: str) -> Layout:
    try:
        return LAYOUTS[name]
    except KeyError:
        raise UnknownLayoutError(f"unknown output layout {name!r}; this SDK knows {sorted(LAYOUTS)}") from None


def decode_params(decode: Mapping[str, float]) -> np.ndarray:
    """The ``decode_params`` input of a products graph from a thresholds mapping."""
    return np.array([float(decode[k]) for k in DECODE_PARAM_ORDER], np.float32)


#: the category kernels (C, D): an initializer input of the plugin node, an optional extra output (or a
#: metadata entry) of raw-v1 files
SEG_KERNELS = "seg_kernels"

# ---- plugin-v1: the fused decode node ("UniParserDecode", version "1", namespace "uniparser") -----------
PLUGIN_NAME = "UniParserDecode"
PLUGIN_VERSION = "1"
PLUGIN_NAMESPACE = "uniparser"
#: the node's inputs in order (seg_kernels is an initializer), and its outputs = PLUGIN_V1's outputs
PLUGIN_INPUTS = RAW_V1.output_names + (SEG_KERNELS,)
PLUGIN_INPUT_SPECS = {t.name: t for t in _RAW + (TensorSpec(SEG_KERNELS, "float32", ("C", "D")),)}
PLUGIN_OUTPUTS = PLUGIN_V1.output_names
#: attribute name -> python type (ONNX INT / FLOAT attribute)
PLUGIN_ATTRIBUTES = {"max_instances": int, "ctr_score": float, "mask_thr": float, "cate_score_thr": float}
PART_MAPS_PACKING = "uint8x4_in_int32"


def plugin_attributes(max_instances: int, ctr_score: float, mask_thr: float, cate_score_thr: float) -> dict:
    """The node attributes (plus plugin_version / plugin_namespace) with the contract's types."""
    return {"plugin_version": PLUGIN_VERSION, "plugin_namespace": PLUGIN_NAMESPACE,
            "max_instances": int(max_instances), "ctr_score": float(ctr_score), "mask_thr": float(mask_thr),
            "cate_score_thr": float(cate_score_thr)}


def unpack_part_maps(packed) -> np.ndarray:
    """Plugin output ``part_maps`` int32 (B, K, 4h, w) -> uint8 labels (B, K, 4h, 4w) (a view, no copy)."""
    a = np.ascontiguousarray(packed)
    if a.dtype == np.uint8:
        return a
    if a.dtype.itemsize != 4 or not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"packed part_maps must be int32 or uint8, got {a.dtype}")
    return a.view(np.uint8).reshape(*a.shape[:-1], a.shape[-1] * 4)
