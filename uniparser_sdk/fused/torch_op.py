"""PyTorch binding of the CUDA fused decode (``kernels/torch_op/uniparser_decode_op.cpp`` +
``kernels/uniparser_decode.cu``), compiled lazily with ``torch.utils.cpp_extension.load`` the first time it is
used on a machine with a CUDA GPU, nvcc and a CUDA build of torch.

>>> from uniparser_sdk.fused import torch_op
>>> if torch_op.is_available():
...     out = torch_op.decode_cuda(center_logits, ins, sem, seg_kernels, img_shape, ori_shape, 0.2, 0.5, 0.3, 100)

Same semantics and result layout as :func:`uniparser_sdk.fused.cpu.decode_cpu` (torch tensors on the GPU).
The build goes to ``<kernels build dir>/torch_op`` (``UNIPARSER_KERNELS_BUILD_DIR`` overrides the parent);
``TORCH_CUDA_ARCH_LIST`` selects the architectures (default: the visible GPU's).
"""
from __future__ import annotations

import os
import shutil
import threading

from .build import KernelBuildError, build_dir, sources_dir

_MOD = None
_LOCK = threading.Lock()


def is_available() -> bool:
    """True when torch has CUDA, a GPU is visible and nvcc can be found (the op can be built and run)."""
    try:
        import torch
    except ImportError:
        return False
    if not torch.cuda.is_available() or torch.version.cuda is None:
        return False
    from torch.utils.cpp_extension import CUDA_HOME
    return CUDA_HOME is not None or shutil.which("nvcc") is not None


def load(verbose: bool = False):
    """Build (first call) and import the extension module; raises KernelBuildError where it cannot run."""
    global _MOD
    with _LOCK:
        if _MOD is not None:
            return _MOD
        if not is_available():
            raise KernelBuildError("the CUDA decode op needs torch with CUDA, a visible GPU and nvcc (CUDA_HOME)")
        from torch.utils.cpp_extension import load as cpp_load
        src = sources_dir()
        out = build_dir() / "torch_op"
        out.mkdir(parents=True, exist_ok=True)
        try:
            _MOD = cpp_load(
                name="uniparser_decode_op",
                sources=[str(src / "torch_op" / "uniparser_decode_op.cpp"), str(src / "uniparser_decode.cu")],
                extra_include_paths=[str(src)],
                extra_cflags=["-O3"],
                extra_cuda_cflags=["-O3"],
                build_directory=str(out),
                verbose=verbose or bool(os.environ.get("UNIPARSER_KERNELS_VERBOSE")),
            )
        except Exception as e:  # compiler errors come as RuntimeError / subprocess errors
            raise KernelBuildError(f"building the CUDA decode op failed: {e}") from e
        return _MOD


def decode_cuda(center_logits, ins, sem, seg_kernels, img_shape, ori_shape, ctr_score: float, mask_thr: float,
                cate_score_thr: float, max_instances: int, max_maps: int | None = None) -> dict:
    """Fused decode of one image on the GPU. Inputs: CUDA tensors (center_logits (S,S)/(1,S,S), ins/sem (D,h,w),
    seg_kernels (C,D)). max_maps=None returns exactly ``count`` maps: the peak step runs first (one small host
    sync for the count) and only ``count`` full-size maps are allocated -- never K of them (K = 100 maps of a
    3024 x 4032 original would be 1.2 GB). Returns dict(scores (K,), grid_index (K,) int64, count int,
    keep (K, C) bool, part_maps (n, H, W) uint8), tensors on the input's device; part_maps owns its memory."""
    mod = load()
    ih, iw = (int(v) for v in img_shape)
    oh, ow = (int(v) for v in ori_shape)
    k = int(max_instances)
    if max_maps is None:
        _, _, cnt = mod.peaks(center_logits, float(ctr_score), k)
        slots = int(cnt.item())
    else:
        slots = int(max_maps)
    scores, grid, count, keep, maps = mod.decode(center_logits, ins, sem, seg_kernels, ih, iw, oh, ow, float(ctr_score),
                                                 float(mask_thr), float(cate_score_thr), k, slots)
    n = int(count.item())
    if max_maps is None and n != slots:  # cannot happen (same peaks twice); never hand out a wrong-sized stack
        raise KernelBuildError(f"CUDA decode: peak count {slots} then {n}")
    return dict(scores=scores, grid_index=grid.long(), count=n, keep=keep.bool(), part_maps=maps)
