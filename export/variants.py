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
``openvino-fp32``          products-v1  fp32       openvino     ``.xml`` + ``.bin``: OpenVINO IR of the
                                                                fp32 graph
``openvino-bf16``          products-v1  bf16       openvino     IR; network bf16, decode f32 (AVX512-BF16
                                                                / AMX CPUs)
``openvino-int8``          products-v1  int8       openvino     IR; convolutions int8 (NNCF, calibrated),
                                                                DeformConv + decode in float
``torch-fp32``             products-v1  fp32       torch        the ``.pth`` itself (nothing exported)
``torch-bf16``             products-v1  bf16       torch        the ``.pth``; network under bf16 autocast,
                                                                channels_last, decode f32
=========================  ===========  =========  ===========  =====================================

Adding a variant = adding one :class:`Variant` line to :data:`VARIANTS` (and, for a new target, one
entry in :data:`TARGETS`). ``precision`` is what the deployed artefact computes in;
``graph_precision`` is the precision of the exported ONNX graph (default: the same) -- e.g. a future
``products-int8-onnxruntime`` row quantises an fp32 graph after export; the OpenVINO rows export the
fp32 graph and convert it to an IR at the row's precision (:attr:`Variant.converted`,
:func:`uniparser_sdk.backends.openvino.convert.convert_onnx`). The ``torch`` rows export nothing: the
checkpoint runs as it is (``Parser("model.pth", precision=...)``); they exist so that the bench names
every runtime x precision the same way. :meth:`Variant.export_options` says what the exporter needs and
refuses graph precisions the exporter cannot produce yet with a clear message.

torch-free (the export itself imports :mod:`uniparser_sdk.export.onnx_export` lazily).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from uniparser_sdk.contract import LAYOUT_PLUGIN, LAYOUT_PRODUCTS, LAYOUT_RAW, PRECISIONS, get_layout
from uniparser_sdk.contract.layouts import LAYOUT_PRODUCTS_V2
from uniparser_sdk.errors import UserInputError

__all__ = ["Variant", "VARIANTS", "TARGETS", "CONVERTED_TARGETS", "CHECKPOINT_TARGETS", "GRAPH_PRECISIONS", "UnknownVariantError", "get_variant",
           "find_variant", "variant_from_flags", "variant_names", "default_variant", "format_table"]

#: target runtime -> the model file ``Parser`` opens for it
TARGETS = {"onnxruntime": ".onnx", "tensorrt": ".engine", "openvino": ".xml", "torch": ".pth"}
#: targets whose artefact is converted from the exported ONNX graph by a runtime tool (not the ONNX file itself)
CONVERTED_TARGETS = ("openvino",)
#: targets that run the checkpoint itself (no export)
CHECKPOINT_TARGETS = ("torch",)
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
    def converted(self) -> bool:
        """True when the artefact is converted from the exported fp32 ONNX graph (OpenVINO IR)."""
        return self.target in CONVERTED_TARGETS

    @property
    def checkpoint(self) -> bool:
        """True when the checkpoint itself runs (torch rows): nothing to export."""
        return self.target in CHECKPOINT_TARGETS

    @property
    def artefact_suffix(self) -> str:
        """File-name suffix of the deployed artefact beside the ONNX stem (``-openvino-bf16.xml``, ...)."""
        if self.converted:
            return f"-{self.target}-{self.precision}{TARGETS[self.target]}"
        return self.onnx_suffix + TARGETS.get(self.target or "onnxruntime", ".onnx")

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
        if self.checkpoint:
            raise UnknownVariantError(f"variant {self.name} runs the checkpoint itself (Parser('MODEL.pth', "
                                      f"precision={self.precision!r})); there is nothing to export")
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
    Variant("openvino-fp32", LAYOUT_PRODUCTS, "fp32", "openvino", "OpenVINO IR of products-fp32 (CPU)",
            graph_precision="fp32"),
    Variant("openvino-bf16", LAYOUT_PRODUCTS, "bf16", "openvino",
            "OpenVINO IR: network bf16 (AVX512-BF16 / AMX), decode f32", graph_precision="fp32"),
    Variant("openvino-int8", LAYOUT_PRODUCTS, "int8", "openvino",
            "OpenVINO IR: convolutions int8 (NNCF, calibrated on images), DeformConv + decode float",
            graph_precision="fp32"),
    Variant("torch-fp32", LAYOUT_PRODUCTS, "fp32", "torch", "the checkpoint in PyTorch eager (nothing exported)"),
    Variant("torch-bf16", LAYOUT_PRODUCTS, "bf16", "torch",
            "the checkpoint, network under torch.autocast bf16 + channels_last, decode f32"),
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


def variant_from_flags(*, fp16: bool = False, plugin: bool = False, engine: bool = False,
                       precision: Optional[str] = None, target: Optional[str] = None) -> Variant:
    """``uniparser-export``'s flags -> the row they select. ``--plugin`` graphs only run on TensorRT,
    so ``--plugin`` selects a ``plugin-*-tensorrt`` row (its engine is built only with ``--engine``).
    ``precision`` / ``target`` (``--precision`` / ``--target``) select a products row of the table:
    e.g. bf16 + openvino -> openvino-bf16; a precision alone picks the first target that has it."""
    if precision is not None or target is not None:
        if fp16 and precision not in (None, "fp16"):
            raise UnknownVariantError(f"--fp16 contradicts --precision {precision}")
        precision = precision or ("fp16" if fp16 else "fp32")
        if engine and target not in (None, "tensorrt"):
            raise UnknownVariantError(f"--engine contradicts --target {target}")
        target = target or ("tensorrt" if engine else None)
        layout = LAYOUT_PLUGIN if plugin else LAYOUT_PRODUCTS
        if target is not None:
            return find_variant(layout, precision, target)
        for v in VARIANTS:
            if (v.layout, v.precision) == (layout, precision) and v.target and not v.checkpoint:
                return v
        raise UnknownVariantError(f"no exportable variant computes in {precision}; the table has {variant_names()}")
    precision = "fp16" if fp16 else "fp32"
    if plugin:
        return find_variant(LAYOUT_PLUGIN, precision, "tensorrt")
    return find_variant(LAYOUT_PRODUCTS, precision, "tensorrt" if engine else "onnxruntime")


def format_table() -> str:
    lines = [f"{'variant':<26}{'layout':<13}{'precision':<11}{'target':<13}description"]
    for v in VARIANTS:
        lines.append(f"{v.name:<26}{v.layout:<13}{v.precision:<11}{v.target or '-':<13}{v.description}")
    return "\n".join(lines)
