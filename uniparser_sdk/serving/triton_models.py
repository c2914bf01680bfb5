"""The Python-backend models of the Triton repository (:mod:`.repository`): thin adapters from Triton's
requests to :mod:`uniparser_sdk.serving.pipeline`. Each ``model.py`` the writer emits imports one class.

``triton_python_backend_utils`` exists only inside Triton's Python-backend stub; it is imported in
``initialize``. Every request is answered: a bad one gets an error response naming what is wrong, the
others of the same batch are served.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..contract.layouts import PRODUCTS_V2
from ..errors import UniParserError
from . import pipeline

__all__ = ["PreprocessModel", "PostprocessModel", "OnnxNetworkModel"]


def _version_dir(args) -> Path:
    repo = Path(args["model_repository"])
    version = str(args.get("model_version") or "1")
    return repo / version if (repo / version).is_dir() else repo


def _parameters(args) -> dict:
    cfg = json.loads(args["model_config"])
    return {k: v.get("string_value", "") for k, v in (cfg.get("parameters") or {}).items()}


class _Base:
    def initialize(self, args):
        import triton_python_backend_utils as pb_utils

        self.pb = pb_utils
        self.dir = _version_dir(args)
        self.params = _parameters(args)
        self.setup(args)

    def setup(self, args):  # pragma: no cover - overridden
        pass

    def _input(self, request, name):
        t = self.pb.get_input_tensor_by_name(request, name)
        return None if t is None else t.as_numpy()

    def _error(self, message: str):
        return self.pb.InferenceResponse(output_tensors=[], error=self.pb.TritonError(message))

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                responses.append(self.pb.InferenceResponse(output_tensors=self.run(request)))
            except (UniParserError, ValueError, TypeError, KeyError) as exc:
                responses.append(self._error(f"{type(self).__name__}: {exc}"))
        return responses

    def finalize(self):
        pass


class PreprocessModel(_Base):
    """image_bytes | image (+ thresholds) -> images, decode_params, image_meta."""

    def setup(self, args):
        self.pre = pipeline.Preprocessor(pipeline.load_meta(self.dir / "model_meta.json"))

    def run(self, request):
        data = self._input(request, "image_bytes")
        raw = self._input(request, "image")
        thr = self._input(request, "thresholds")
        if (data is None) == (raw is None):
            raise pipeline.InvalidRequestError("send exactly one of 'image_bytes' (an encoded image file) and "
                                               "'image' (uint8 HxWxC BGR pixels)")
        given = data if data is not None else raw
        if given.shape[0] != 1:
            raise pipeline.InvalidRequestError(f"send one image per request (batch size 1, got {given.shape[0]}); "
                                               "the server batches requests itself")
        img = pipeline.decode_image(data[0].reshape(-1)[0]) if data is not None else pipeline.check_raw_image(raw[0])
        x, params, info = self.pre(img, None if thr is None else thr.reshape(-1))
        pb = self.pb
        return [pb.Tensor("images", x), pb.Tensor("decode_params", params), pb.Tensor("image_meta", info)]


class PostprocessModel(_Base):
    """network outputs + image_meta + decode_params -> person_scores, part_maps, semantic, result_json."""

    def setup(self, args):
        meta = pipeline.load_meta(self.dir / "model_meta.json")
        self.classes = tuple(meta.classes)
        self.max_instances = int(meta.thresholds["max_instances"])

    def run(self, request):
        t0 = time.perf_counter()
        outputs = {name: self._input(request, name) for name in PRODUCTS_V2.output_names}
        missing = [n for n, v in outputs.items() if v is None]
        if missing:
            raise pipeline.InvalidRequestError(f"missing network outputs {missing}")
        info, params = self._input(request, "image_meta"), self._input(request, "decode_params")
        res = pipeline.finish_request(outputs, info[0], params[0], self.classes, self.max_instances)
        res.timings = {"postprocess": (time.perf_counter() - t0) * 1e3}
        h, w = res.image_shape
        maps = np.stack([p.parts for p in res.persons]) if res.persons else np.zeros((0, h, w), np.uint8)
        scores = np.array([p.score for p in res.persons], np.float32)
        pb = self.pb
        return [pb.Tensor("person_scores", scores[None]), pb.Tensor("part_maps", maps[None]),
                pb.Tensor("semantic", res.semantic[None]),
                pb.Tensor("result_json", np.array([[res.to_json(include_parts=True).encode()]], dtype=np.object_))]


class OnnxNetworkModel(_Base):
    """The network through ONNX Runtime inside the Python backend (network backend ``python``): for
    servers without an onnxruntime backend that runs DeformConv-19 (ONNX Runtime >= 1.25). Requests
    of one call with equal image shapes are stacked into one batch (what Triton's onnxruntime backend
    does with the dynamic batcher's batches)."""

    def setup(self, args):
        from ..backends.onnxruntime.runner import OnnxRuntimeBackend

        threads = int(self.params.get("threads") or 0) or None
        self.backend = OnnxRuntimeBackend(self.dir / "model.onnx", device="cpu", threads=threads)
        self.names = PRODUCTS_V2.output_names

    def execute(self, requests):
        responses = [None] * len(requests)
        groups: dict[tuple, list] = {}
        for i, request in enumerate(requests):
            images = self._input(request, "images")
            params = self._input(request, "decode_params")
            if images is None or params is None or images.ndim != 4 or params.shape != (images.shape[0], 3):
                responses[i] = self._error("OnnxNetworkModel: needs images (B, 3, H, W) and decode_params (B, 3)")
                continue
            groups.setdefault(images.shape[1:], []).append((i, images, params))
        for items in groups.values():
            try:
                batch = np.concatenate([im for _, im, _ in items])
                params = np.concatenate([p for _, _, p in items])
                out = self.backend.infer(batch, params)
            except (UniParserError, ValueError, RuntimeError) as exc:
                for i, _, _ in items:
                    responses[i] = self._error(f"OnnxNetworkModel: {exc}")
                continue
            start = 0
            for i, im, _ in items:
                n = im.shape[0]
                responses[i] = self.pb.InferenceResponse(
                    output_tensors=[self.pb.Tensor(name, np.ascontiguousarray(out[name][start:start + n]))
                                    for name in self.names])
                start += n
        return responses

    def finalize(self):
        self.backend.close()
