"""ONNX -> OpenVINO IR for UniParser models, metadata included.

OpenVINO 2026.x reads every operator of our graphs except ONNX ``DeformConv`` (opset 19), which
:func:`deformconv_extension` maps to ``opset8.deformable_convolution(..., bilinear_interpolation_pad=True)``
plus the bias (ONNX samples zero outside the image and interpolates against it, which is what
``bilinear_interpolation_pad=True`` does; f32 agrees with ONNX Runtime to ~1e-6 relative).

Precision (stored as ``ModelMeta.precision`` and applied when the IR is compiled, see :mod:`.runner`):

- ``fp32``: everything in float32 (``INFERENCE_PRECISION_HINT=f32``);
- ``bf16``: the network in bfloat16 on CPUs with AVX512-BF16 / AMX; the decode (cosine products,
  thresholds) stays float32: the runner compiles the network and the decode as two models
  (:func:`split_network_and_decode`), the decode with ``INFERENCE_PRECISION_HINT=f32``;
- ``int8``: convolutions quantised to int8 (:mod:`.calibrate`), DeformConv and the decode in float.

The IR is two files; both are written to temporary names and renamed (the ``.bin`` first, the ``.xml``
last), so a reader never sees a partial model.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from ..._lazy import require
from ...contract import PRECISIONS, ModelMeta, read_onnx_metadata
from ...contract.layouts import RAW_V1
from ...contract.meta import PREFIX, meta_from_props
from ...errors import UniParserError, UserInputError

RT_INFO_ROOT = "uniparser"
#: runtime precision hint of each stored precision
PRECISION_HINT = {"fp32": "f32", "bf16": "bf16", "int8": "bf16", "fp16": "f16"}


class OpenVINOConversionError(UniParserError, RuntimeError):
    """The ONNX model could not be converted to OpenVINO IR."""


def openvino():
    return require("openvino", "the OpenVINO backend (bf16 / int8 on CPUs)")


def deformconv_extension():
    """A frontend ConversionExtension mapping ONNX DeformConv-19 to OpenVINO's deformable_convolution."""
    ov = openvino()
    from openvino.frontend import ConversionExtension
    op8 = ov.opset8

    def present(node, i):  # an optional ONNX input left empty ("") arrives as a NullNode
        return i < node.get_input_size() and node.get_input(i).get_node().get_type_name() != "NullNode"

    def convert(node):
        x, weight, offset = node.get_input(0), node.get_input(1), node.get_input(2)
        pads = list(node.get_attribute("pads", [0, 0, 0, 0]))
        args = [x, offset, weight, list(node.get_attribute("strides", [1, 1])), pads[:2], pads[2:],
                list(node.get_attribute("dilations", [1, 1]))]
        if present(node, 4):
            args.append(node.get_input(4))  # modulation mask
        y = op8.deformable_convolution(*args, auto_pad="explicit", group=int(node.get_attribute("group", 1)),
                                       deformable_group=int(node.get_attribute("offset_group", 1)),
                                       bilinear_interpolation_pad=True)
        if present(node, 3):
            bias = op8.reshape(node.get_input(3), op8.constant(np.array([1, -1, 1, 1], np.int64)), False)
            y = op8.add(y, bias)
        return [y.output(0)]

    return ConversionExtension("DeformConv", convert)


def make_core():
    """An ``ov.Core`` that can read our ONNX files."""
    core = openvino().Core()
    core.add_extension(deformconv_extension())
    return core


def read_onnx(path, core=None):
    core = core or make_core()
    try:
        return core.read_model(str(path))
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise OpenVINOConversionError(f"OpenVINO cannot read {path}: {first}") from exc


def _port_names(port) -> set:
    try:
        return set(port.get_names())
    except Exception:
        return set()


def _raw_ports(model) -> dict:
    raw = set(RAW_V1.output_names)
    out = {}
    for op in model.get_ordered_ops():
        for port in op.outputs():
            for name in _port_names(port) & raw:
                out.setdefault(name, port)
    return out


def _reaches(model_results, param) -> bool:
    """Whether ``param`` is an ancestor of any of ``model_results``."""
    seen, stack = set(), [r for r in model_results]
    while stack:
        node = stack.pop()
        key = node.get_friendly_name()  # unique in a model (wrapper objects are not stable)
        if key in seen:
            continue
        seen.add(key)
        if node.get_friendly_name() == param.get_friendly_name() and node.get_type_name() == "Parameter":
            return True
        stack.extend(i.get_source_output().get_node() for i in node.inputs())
    return False


def split_network_and_decode(path, model=None):
    """Two OpenVINO models from one UniParser IR: the network (``images`` -> center_logits, ins_feats,
    sem_feats) and the decode (those three tensors [+ decode_params] -> the layout's outputs), so the
    network can run at low precision while the decode (cosine products, thresholds) runs in float32.
    Returns ``(network, decode)``; ``decode`` is None for raw-v1 models (their outputs are the raw tensors).
    ``model``: the IR already read from ``path`` (it becomes the network; the decode needs its own copy).

    (Marking decode nodes with OpenVINO's keep-precision rt_info is not enough: the CPU plugin still runs
    some marked MatMuls in bf16, and the marks do not survive IR serialisation.)"""
    ov = openvino()
    core = ov.Core()
    net_src = model if model is not None else core.read_model(str(path))
    dec_src = core.read_model(str(path))
    raw = RAW_V1.output_names
    net_ports = _raw_ports(net_src)
    if sorted(net_ports) != sorted(raw):
        raise OpenVINOConversionError(f"{path}: the IR does not expose the network tensors {list(raw)} "
                                      f"(found {sorted(net_ports)}); convert it again with this SDK")
    images = [p for p in net_src.get_parameters() if "images" in _port_names(p.output(0))]
    network = ov.Model([net_ports[n] for n in raw], images, "uniparser-network")
    if {r.input(0).get_source_output().get_any_name() for r in dec_src.get_results()} <= set(raw):
        return network, None  # raw-v1: nothing after the network
    dec_ports = _raw_ports(dec_src)
    params = []
    for n in raw:
        port = dec_ports[n]
        param = ov.opset8.parameter(port.get_partial_shape(), port.get_element_type(), name=n)
        param.output(0).set_names({n})
        for target in list(port.get_target_inputs()):
            target.replace_source_output(param.output(0))
        params.append(param)
    results = dec_src.get_results()
    keep = [p for p in dec_src.get_parameters() if _reaches(results, p)]
    decode = ov.Model(results, params + keep, "uniparser-decode")
    return network, decode


def set_meta(model, meta: ModelMeta) -> None:
    for key, value in meta.to_props().items():
        model.set_rt_info(value, [RT_INFO_ROOT, key[len(PREFIX):]])


def read_meta(model, path="model") -> ModelMeta:
    if not model.has_rt_info([RT_INFO_ROOT, "layout"]):
        raise UserInputError(f"{path}: OpenVINO IR without UniParser metadata (convert it with "
                             "uniparser-quantize or uniparser-export --target openvino)")
    props = {}
    for name in ModelMeta.__dataclass_fields__:
        if model.has_rt_info([RT_INFO_ROOT, name]):
            props[PREFIX + name] = model.get_rt_info([RT_INFO_ROOT, name]).astype(str)
    return meta_from_props(props)


def save_ir(model, xml_path) -> Path:
    """Save ``model`` as ``xml_path`` + ``.bin`` atomically (weights as stored: no fp16 compression)."""
    ov = openvino()
    xml_path = Path(xml_path)
    if xml_path.suffix.lower() != ".xml":
        raise UserInputError(f"OpenVINO IR path must end in .xml, got {xml_path}")
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{xml_path.stem}.", dir=xml_path.parent))
    try:
        tmp_xml = tmpdir / xml_path.name
        ov.save_model(model, str(tmp_xml), compress_to_fp16=False)
        os.replace(tmp_xml.with_suffix(".bin"), xml_path.with_suffix(".bin"))
        os.replace(tmp_xml, xml_path)
    finally:
        for f in tmpdir.glob("*"):
            f.unlink()
        tmpdir.rmdir()
    return xml_path


def convert_onnx(onnx_path, xml_path, precision: str = "bf16", *, calibration=None, progress: bool = True,
                 log=print) -> ModelMeta:
    """Convert an exported UniParser ``.onnx`` to OpenVINO IR at ``precision`` (fp32, bf16 or int8).

    ``calibration``: for int8, an iterable of HxWx3 BGR uint8 images (see :mod:`.calibrate`; default:
    the bundled samples plus synthetic scenes). Returns the metadata written into the IR."""
    if precision not in ("fp32", "bf16", "int8"):
        raise UserInputError(f"OpenVINO precision must be fp32, bf16 or int8, got {precision!r} "
                             f"(the SDK's precisions: {', '.join(PRECISIONS)})")
    meta = read_onnx_metadata(onnx_path)
    if meta.precision != "fp32":
        raise UserInputError(f"{onnx_path} is a {meta.precision} export; convert the fp32 ONNX model")
    if meta.layout not in ("products-v1", "products-v2", "raw-v1"):
        raise UserInputError(f"{onnx_path}: layout {meta.layout} cannot run on OpenVINO (it needs a TensorRT plugin)")
    core = make_core()
    model = read_onnx(onnx_path, core)
    if precision == "int8":
        from .calibrate import quantize_int8
        model = quantize_int8(model, meta, calibration, progress=progress, log=log)
    meta.precision = precision
    set_meta(model, meta)
    save_ir(model, xml_path)
    log(f"wrote {xml_path} (+ .bin): OpenVINO IR, layout {meta.layout}, {precision}")
    return meta
