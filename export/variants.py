"""The export variants, declared once: output layout x precision x target runtime.

A variant names what a deployment gets, the way mmdeploy composes
``instance-seg_tensorrt-fp16_dynamic``: ``products-fp16`` is the products-v1 graph in half precision
for ONNX Runtime, ``plugin-fp32-tensorrt`` the plugin-v1 graph built into a TensorRT engine. Both
``uniparser-export`` (``--variant NAME``, and its older flags ``--fp16``/``--plugin``/``--engine``,
which select a row of this table) and ``uniparser-bench`` (one row per variant) read :data:`VARIANTS`.

=========================  ===========  =========  ===========  =====================================
name                       layout       precision  target       artefacts
=========================  ===========  =========  ===========  =====================================
``products-fp32``          products-v1  fp32       onnxruntime  ``.onnx`` (the default)
``products-fp16``          products-v1  fp16       onnxruntime  ``-fp16.onnx``
``products-fp32-tensorrt`` products-v1  fp32       tensorrt     ``.onnx`` + ``.engine`` + sidecar
``products-fp16-tensorrt`` products-v1  fp16       tensorrt     ``-fp16.onnx`` + FP16 engine
``plugin-fp32-tensorrt``   plugin-v1    fp32       tensorrt     ``-plugin.onnx`` (+ engine)
``plugin-fp16-tensorrt``   plugin-v1    fp16       tensorrt     ``-fp16-plugin.onnx`` (+ engine)
``products-v2-fp32``       products-v2  fp32       onnxruntime  ``-products-v2.onnx``: thresholds per
                                                                image (decode_params (batch, 3))
``products-v2-fp32-tensorrt`` products-v2 fp32     tensorrt     its engine
``raw-fp32``               raw-v1       fp32       (none)       ``-raw.onnx``: the network only, the
                                                                input of the plugin rewrite
=========================  ===========  =========  ===========  =====================================

Adding a variant = adding one :class:`Variant` line to :data:`VARIANTS` (and, for a new target, one
entry in :data:`TARGETS`). ``precision`` is what the deployed artefact computes in;
``graph_precision`` is the precision of the exported ONNX graph (default: the same) -- e.g. a future
``products-int8-onnxruntime`` row quantises an fp32 graph after export, an OpenVINO bf16 row asks the
runtime for bf16 on an fp32 graph. :meth:`Variant.export_options` says what the exporter needs and
refuses graph precisions the exporter cannot produce yet with a clear message.

torch-free (the export itself imports :mod:`uniparser_sdk.export.onnx_export` lazily).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from uniparser_sdk.contract import LAYOUT_PLUGIN, LAYOUT_PRODUCTS, LAYOUT_RAW, PRECISIONS, get_layout
from uniparser_sdk.contract.layouts import LAYOUT_PRODUCTS_V2
from uniparser_sdk.errors import UserInputError

__all__ = ["Variant", "VARIANTS", "TARGETS", "GRAPH_PRECISIONS", "UnknownVariantError", "get_variant",
           "find_variant", "variant_from_flags", "variant_names", "default_variant", "format_table"]

#: target runtime -> the model file ``Parser`` opens for it
TARGETS = {"onnxruntime": ".onnx", "tensorrt": ".engine"}
#: graph precisions :mod:`uniparser_sdk.export.onnx_export` can write
GRAPH_PRECISIONS = ("fp32", "fp16")
_SHORT = {LAYOUT_PRODUCTS: "products", LAYOUT_PRODUCTS_V2: "products-v2", LAYOUT_PLUGIN: "plugin", LAYOUT_RAW: "raw"}


class UnknownVariantError(UserInputError):
    """No row of the variant table has that name (or that layout / precision / target)."""


@dataclass(frozen=True)
class Variant:
    name: str
    layout: str  # a contract layout name (uniparser_sdk.contract.LAYOUTS)
    precision: str  # what the deployed artefact computes in (uniparser_sdk.contract.PRECISIONS)
    target: Optional[str]  # the runtime that runs it (TARGETS); None = an intermediate file
    description: str = ""
    graph_precision: Optional[str] = None  # precision of the ONNX graph (default: ``precision``)

    def __post_init__(self):
        get_layout(self.layout)
        if self.precision not in PRECISIONS:
            raise ValueError(f"variant {self.name}: unknown precision {self.precision!r} ({PRECISIONS})")
        if self.target is not None and self.target not in TARGETS:
            raise ValueError(f"variant {self.name}: unknown target {self.target!r} ({sorted(TARGETS)})")

    # ---- derived -----------------------------------------------------------------------------

    @property
    def onnx_precision(self) -> str:
        return self.graph_precision or self.precision

    @property
    def plugin(self) -> bool:
        return self.layout == LAYOUT_PLUGIN

    @property
    def engine(self) -> bool:
        """True when the artefact is a TensorRT engine built from the ONNX file."""
        return self.target == "tensorrt"

    @property
    def engine_fp16(self) -> bool:
        return self.engine and self.precision == "fp16"

    @property
    def onnx_suffix(self) -> str:
        """File-name suffix of the ONNX file (``""``, ``-fp16``, ``-plugin``, ``-fp16-plugin``, ``-raw``):
        variants sharing a graph share the file."""
        p = "" if self.onnx_precision == "fp32" else f"-{self.onnx_precision}"
        lay = "" if self.layout == LAYOUT_PRODUCTS else f"-{_SHORT.get(self.layout, self.layout)}"
        return p + lay

    def export_options(self) -> dict:
        """Keyword arguments of the exporter for this variant's graph precision."""
        if self.onnx_precision not in GRAPH_PRECISIONS:
            raise UnknownVariantError(f"variant {self.name}: the ONNX exporter writes {list(GRAPH_PRECISIONS)} "
                                      f"graphs, not {self.onnx_precision}")
        return {"fp16": self.onnx_precision == "fp16"}

    def build_meta(self, model, info: Optional[dict] = None, **kw):
        """:func:`uniparser_sdk.export.onnx_export.build_meta` for this variant (layout and precision)."""
        from uniparser_sdk.export import onnx_export as ox

        return ox.build_meta(model, info, layout=self.layout if not self.plugin else LAYOUT_PRODUCTS,
                             precision=self.onnx_precision, **kw)

    def export(self, model, path, meta, **kw):
        """Write this variant's ONNX file through the SDK exporter (``export_onnx`` or
        ``export_plugin_onnx``); ``kw`` are the exporter's other options. Returns its ExportReport."""
        from dataclasses import replace

        from uniparser_sdk.export import onnx_export as ox

        opts = {**self.export_options(), **kw}
        if self.plugin:
            return ox.export_plugin_onnx(model, path, meta, **opts)
        if meta.layout != self.layout:
            meta = replace(meta, layout=self.layout)
        return ox.export_onnx(model, path, meta, **opts)


_PRODUCTS_DOC = "network + decode steps 1-4 in standard ONNX ops; step 5 per person on the host"
VARIANTS = (
    Variant("products-fp32", LAYOUT_PRODUCTS, "fp32", "onnxruntime", _PRODUCTS_DOC),
    Variant("products-fp16", LAYOUT_PRODUCTS, "fp16", "onnxruntime", _PRODUCTS_DOC + "; half-precision network"),
    Variant("products-fp32-tensorrt", LAYOUT_PRODUCTS, "fp32", "tensorrt", "TensorRT engine of products-fp32"),
    Variant("products-fp16-tensorrt", LAYOUT_PRODUCTS, "fp16", "tensorrt",
            "TensorRT FP16 engine of the fp16 products graph"),
    Variant("plugin-fp32-tensorrt", LAYOUT_PLUGIN, "fp32", "tensorrt",
            "network + the fused UniParserDecode plugin node (thresholds baked in)"),
    Variant("plugin-fp16-tensorrt", LAYOUT_PLUGIN, "fp16", "tensorrt", "plugin-v1 with a half-precision network"),
    Variant("products-v2-fp32", LAYOUT_PRODUCTS_V2, "fp32", "onnxruntime",
            "products with decode_params (batch, 3): thresholds per image (Triton batching)"),
    Variant("products-v2-fp32-tensorrt", LAYOUT_PRODUCTS_V2, "fp32", "tensorrt", "TensorRT engine of products-v2-fp32"),
    Variant("raw-fp32", LAYOUT_RAW, "fp32", None, "network only (input of the plugin rewrite; not run by Parser)"),
)
_BY_NAME = {v.name: v for v in VARIANTS}
assert len(_BY_NAME) == len(VARIANTS), "duplicate variant names"


def variant_names(target: Optional[str] = None) -> list[str]:
    return [v.name for v in VARIANTS if target is None or v.target == target]


def get_variant(name: str) -> Variant:
    try:
        return _BY_NAME[str(name).strip()]
    except KeyError:
        raise UnknownVariantError(f"unknown variant {name!r}; choose one of {variant_names()}") from None


def find_variant(layout: str, precision: str, target: Optional[str]) -> Variant:
    """The row with this layout, precision and target."""
    for v in VARIANTS:
        if (v.layout, v.precision, v.target) == (layout, precision, target):
            return v
    raise UnknownVariantError(f"no variant for layout {layout}, precision {precision}, target {target}; "
                              f"the table has {variant_names()}")


def default_variant(target: str, precision: str = "fp32") -> Variant:
    """The products-v1 row of a target (what the bench runs on that backend by default)."""
    return find_variant(LAYOUT_PRODUCTS, precision, target)


def variant_from_flags(*, fp16: bool = False, plugin: bool = False, engine: bool = False) -> Variant:
    """``uniparser-export``'s flags -> the row they select. ``--plugin`` graphs only run on TensorRT,
    so ``--plugin`` selects a ``plugin-*-tensorrt`` row (its engine is built only with ``--engine``)."""
    precision = "fp16" if fp16 else "fp32"
    if plugin:
        return find_variant(LAYOUT_PLUGIN, precision, "tensorrt")
    return find_variant(LAYOUT_PRODUCTS, precision, "tensorrt" if engine else "onnxruntime")


def format_table() -> str:
    lines = [f"{'variant':<26}{'layout':<13}{'precision':<11}{'target':<13}description"]
    for v in VARIANTS:
        lines.append(f"{v.name:<26}{v.layout:<13}{v.precision:<11}{v.target or '-':<13}{v.description}")
    return "\n".join(lines)
