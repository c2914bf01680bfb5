"""Serving UniParser behind Triton Inference Server.

- :func:`write_triton_repository` (``uniparser-triton`` / ``uniparser-export --triton-repo``): a Triton
  model repository for a products-v2 ONNX model (and its TensorRT engine): the network as an
  ``onnxruntime_onnx`` / ``tensorrt_plan`` model, pre- and post-processing as Python-backend models
  running this SDK's own code, joined by an ensemble (:mod:`.repository` says why an ensemble).
- :class:`TritonParserClient`: sends images over HTTP or gRPC (tritonclient) and returns the same
  :class:`~uniparser_sdk.results.ParseResult` objects as :meth:`Parser.predict
  <uniparser_sdk.runtime.parser.Parser.predict>`.
- :mod:`.local`: start the ``tritonserver`` bundled in the ``nvidia-pytriton`` wheel on 127.0.0.1 (tests,
  the load benchmark, trying the repository without a container).

Nothing here imports torch; tritonclient is imported lazily (pip extra ``serving``).
"""
from __future__ import annotations

from .repository import (ENSEMBLE, NETWORK, NETWORK_BACKENDS, POSTPROCESS, PREPROCESS, RepositoryError,
                         model_configs, write_triton_repository)

__all__ = ["ENSEMBLE", "NETWORK", "NETWORK_BACKENDS", "POSTPROCESS", "PREPROCESS", "RepositoryError",
           "model_configs", "write_triton_repository", "TritonParserClient", "TritonRequestError"]


def __getattr__(name):  # the client needs tritonclient: import it only when asked for
    if name in ("TritonParserClient", "TritonRequestError"):
        from . import client

        return getattr(client, name)
    raise AttributeError(name)
