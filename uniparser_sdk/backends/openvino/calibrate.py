"""int8 post-training quantisation of a UniParser OpenVINO model (NNCF), calibrated on images.

What is quantised: the convolutions of the network (int8 weights and activations, VNNI/AMX kernels on
CPUs that have them). What is not: ``DeformableConvolution`` (NNCF leaves it in float), and the decode --
its MatMuls (cosine products) are in the ignored scope, and every decode node keeps float32 at run time.

Calibration is deterministic: the images are taken in sorted file order (then the synthetic scenes in
seed order), preprocessed exactly as :class:`~uniparser_sdk.runtime.parser.Parser` does (keep-ratio resize
to the model's input scale, normalisation from the metadata, zero padding to 32), one image per batch,
all of them used (no random subset).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

from ..._lazy import require
from ...contract import DEFAULT_SCALE, ModelMeta, decode_params
from ...errors import UserInputError
from ...io_utils import IMAGE_EXTENSIONS, imread

DEFAULT_SYNTHETIC = 24  # synthetic scenes added to the bundled samples when no folder is given
SYNTHETIC_SEED = 20261201


def calibration_images(folder: Optional[str] = None, *, limit: Optional[int] = None,
                       synthetic: int = DEFAULT_SYNTHETIC, seed: int = SYNTHETIC_SEED) -> list:
    """BGR uint8 images to calibrate on: the images of ``folder`` (sorted names; recursive), else the
    bundled samples plus ``synthetic`` procedural scenes (seeded)."""
    if folder is not None:
        root = Path(folder)
        if not root.is_dir():
            raise UserInputError(f"calibration folder not found: {root}")
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not files:
            raise UserInputError(f"no images ({', '.join(IMAGE_EXTENSIONS[:4])}, ...) in {root}")
        files = files[:limit] if limit else files
        return [imread(p) for p in files]
    import uniparser_sdk

    samples = Path(uniparser_sdk.__file__).parent / "assets" / "samples"
    imgs = [imread(p) for p in sorted(samples.iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS]
    if synthetic:
        from ...data.synthetic import SyntheticScenes

        scenes = SyntheticScenes(synthetic, seed=seed, size=(288, 384), persons=(1, 4))
        imgs += [scenes[i]["image"] for i in range(len(scenes))]
    return imgs[:limit] if limit else imgs


def _feeds(images: Sequence[np.ndarray], meta: ModelMeta, progress: bool) -> list:
    from ...runtime.preprocess import preprocess

    from ..base import decode_params_feed

    scale = tuple(meta.input.get("scale", DEFAULT_SCALE))
    params = decode_params(meta.thresholds)
    takes_params = "decode_params" in meta.contract.input_names
    it = images
    if progress:
        from tqdm import tqdm
        it = tqdm(images, desc="preprocessing calibration images", unit="img")
    feeds = []
    for img in it:
        x, _ = preprocess(img, scale=scale, norm=meta.normalization)
        feed = {"images": x}
        if takes_params:
            feed["decode_params"] = decode_params_feed(meta.layout, params, x.shape[0])
        feeds.append(feed)
    return feeds


def quantize_int8(model, meta: ModelMeta, images: Optional[Iterable[np.ndarray]] = None, *,
                  progress: bool = True, log=print):
    """Return an int8-quantised copy of the OpenVINO ``model`` (see the module docstring)."""
    nncf = require("nncf", "int8 calibration (pip install 'uniparser-sdk[openvino]')")
    imgs = list(images) if images is not None else calibration_images()
    if not imgs:
        raise UserInputError("int8 calibration needs at least one image")
    feeds = _feeds(imgs, meta, progress)
    log(f"calibrating int8 on {len(feeds)} images")
    return nncf.quantize(model, nncf.Dataset(feeds), subset_size=len(feeds),
                         preset=nncf.QuantizationPreset.PERFORMANCE,
                         ignored_scope=nncf.IgnoredScope(types=["MatMul"]))
