"""The graph contract (torch-free): layouts, decode constants and model metadata.

Everything that produces or consumes an exported UniParser graph reads this package:
:mod:`.layouts` (one declaration per output layout), :mod:`.constants` (the decode's fixed numbers and
the preprocessing constants), :mod:`.meta` (``ModelMeta``: one builder, one reader per carrier).
"""
from .constants import (COUNT_THR, DECODE_PARAM_ORDER, DECODE_RANGES, DEFAULT_DECODE, DEFAULT_MAX_INSTANCES,
                        DEFAULT_SCALE, FEATURE_STRIDE, MASKNESS_EPS, MAX_INSTANCES_LIMIT, MEAN_RGB, NORM_EPS,
                        NUM_GRID, SIZE_DIVISOR, STD_RGB)
from .layouts import (LAYOUT_PLUGIN, LAYOUT_PRODUCTS, LAYOUT_RAW, LAYOUTS, PLUGIN_V1, PRODUCTS_V1, RAW_V1, Layout,
                      TensorSpec, UnknownLayoutError, decode_params, get_layout)
from .meta import PREFIX, PRECISIONS, MetadataError, ModelMeta, build_model_meta, meta_from_props, read_onnx_metadata

__all__ = [
    "COUNT_THR", "DECODE_PARAM_ORDER", "DECODE_RANGES", "DEFAULT_DECODE", "DEFAULT_MAX_INSTANCES", "DEFAULT_SCALE",
    "FEATURE_STRIDE", "MASKNESS_EPS", "MAX_INSTANCES_LIMIT", "MEAN_RGB", "NORM_EPS", "NUM_GRID", "SIZE_DIVISOR",
    "STD_RGB", "LAYOUT_PLUGIN", "LAYOUT_PRODUCTS", "LAYOUT_RAW", "LAYOUTS", "PLUGIN_V1", "PRODUCTS_V1", "RAW_V1",
    "Layout", "TensorSpec", "UnknownLayoutError", "decode_params", "get_layout", "PREFIX", "PRECISIONS",
    "MetadataError", "ModelMeta", "build_model_meta", "meta_from_props", "read_onnx_metadata",
]
