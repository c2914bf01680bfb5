"""Parser, backends (ONNX Runtime, PyTorch, TensorRT logic) and the uniparser-predict CLI.

A random-init ``tiny`` model is made to produce persons (center bias 0 -> many peaks; category kernels
near the mean of the model's own semantic features -> high category cosines; mask_thr 0.8 -> masks
smaller than the image),
saved as .pth and exported to .onnx with K = 10, so that every comparison has persons to compare.
"""
import json
import subprocess
import sys
import textwrap
import threading
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

from uniparser_sdk.io_utils import atomic_imwrite, imread
from uniparser_sdk.contract import ModelMeta, read_onnx_metadata
from uniparser_sdk.results import ParseResult
from uniparser_sdk.runtime import Parser
from uniparser_sdk.backends import BackendClosedError, UnknownModelType
from uniparser_sdk.backends.tensorrt import runner as trtb

K = 10
SCALE = (256, 160)  # small network inputs keep the CPU tests fast
KW = dict(device="cpu", scale=SCALE)


# ------------------------------------------------------------------------------ fixtures

def scene(h, w, seed=0):
    """A structured BGR test image: gradient background with coloured ellipses ('people')."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    img = np.stack([(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)), np.full((h, w), 90)], -1)
    img = img.astype(np.uint8)
    for _ in range(4):
        center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(w // 10, w // 4)), int(rng.integers(h // 6, h // 2)))
        cv2.ellipse(img, center, axes, 0, 0, 360, tuple(int(v) for v in rng.integers(0, 256, 3)), -1)
    return cv2.GaussianBlur(img, (5, 5), 1.5)


def _export(model, info, path):
    """ONNX export with metadata: the SDK exporter when present, else torch.onnx.export + metadata."""
    try:
        from uniparser_sdk.export.onnx_export import build_meta, export_onnx
    except ImportError:
        export_onnx = None
    if export_onnx is not None:
        meta = build_meta(model, info, max_instances=K)
        export_onnx(model, path, meta, max_instances=K, sample_hw=(128, 160), parity=False, simplify=False,
                    log=lambda *_: None)
        return
    import onnx
    import torch
    from dataclasses import asdict

    from uniparser_sdk.classes import classes_for
    from uniparser_sdk.model.end_to_end import INPUT_NAMES, OUTPUT_NAMES, EndToEnd

    axes = {"images": {0: "b", 2: "h", 3: "w"}, "instance_masks": {0: "b", 2: "fh", 3: "fw"},
            "cat_conf": {0: "b", 2: "fh", 3: "fw"}}
    axes.update({n: {0: "b"} for n in ("scores", "num_instances", "grid_index", "keep")})
    cfg = model.config
    torch.onnx.export(EndToEnd(model, K).eval(), (torch.zeros(1, 3, 128, 160), torch.tensor([0.3, 0.5, 0.3])),
                      str(path), dynamo=False, opset_version=19, input_names=INPUT_NAMES, output_names=OUTPUT_NAMES,
                      dynamic_axes=axes)
    proto = onnx.load(str(path))
    decode = dict(asdict(cfg.decode), max_instances=K)
    meta = ModelMeta(config=cfg.to_dict(), classes=list(classes_for(cfg.num_classes)), decode=decode)
    for k, v in meta.to_props().items():
        e = proto.metadata_props.add()
        e.key, e.value = k, v
    onnx.save(proto, str(path))


def aligned_kernels(model, scale):
    """Category kernels = the mean semantic feature of another scene, perturbed per class: cosines
    around 0.8, so parts pass mask_thr 0.8 (which gates the part confidences too, DESIGN §3)."""
    import torch

    from uniparser_sdk.runtime.preprocess import preprocess

    with torch.no_grad():
        mean = model(torch.from_numpy(preprocess(scene(128, 160, 7), scale=scale)[0]))[2][0].flatten(1).mean(1)
        noise = torch.randn(model.mask_head.seg_kernels.shape, generator=torch.Generator().manual_seed(1))
        model.mask_head.seg_kernels.copy_(mean[None] * (1 + 0.5 * noise))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import torch

    from uniparser_sdk.model.checkpoint import load_model, save_checkpoint, with_decode
    from uniparser_sdk.model.configs import get_config
    from uniparser_sdk.model.uniparser import UniParser

    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    cfg = with_decode(get_config("tiny"), mask_thr=0.8, max_instances=K)
    model = UniParser(cfg).eval()
    with torch.no_grad():
        model.mask_head.center_heatmap.bias.fill_(0.0)
    aligned_kernels(model, SCALE)
    pth = save_checkpoint(root / "tiny.pth", model)
    loaded, info = load_model(pth)
    onnx_path = root / "tiny.onnx"
    _export(loaded, info, onnx_path)
    return {"pth": pth, "onnx": onnx_path, "root": root}


@pytest.fixture(scope="module")
def onnx_parser(models):
    with Parser(models["onnx"], **KW) as p:
        yield p


@pytest.fixture(scope="module")
def torch_parser(models):
    with Parser(models["pth"], **KW) as p:
        yield p


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Two enlarge-geometry images and one shrink-geometry image (portrait)."""
    return [scene(150, 200, 1), scene(96, 128, 2), scene(260, 200, 3)]


def assert_agree(a: ParseResult, b: ParseResult, max_frac=1e-3):
    """Results of two backends: same persons (count, scores) and the same part maps up to a few pixels.

    The networks' float32 outputs differ in the last bits between PyTorch and ONNX Runtime (other
    convolution kernels), so a pixel whose two best categories are within ~1e-6 (or whose confidence is
    within ~1e-6 of a threshold) may flip: at most ``max_frac`` of each map."""
    assert a.image_shape == b.image_shape
    assert a.num_persons == b.num_persons
    np.testing.assert_allclose([p.score for p in a], [p.score for p in b], atol=1e-5)
    for pa, pb in zip(a, b):
        assert (pa.parts != pb.parts).mean() <= max_frac
        assert pa.part_ids == pb.part_ids or (pa.parts != pb.parts).sum() <= 2


def assert_same_result(a: ParseResult, b: ParseResult, score_tol=1e-5):
    assert a.image_shape == b.image_shape
    assert a.num_persons == b.num_persons
    np.testing.assert_allclose([p.score for p in a], [p.score for p in b], atol=score_tol)
    for pa, pb in zip(a, b):
        np.testing.assert_array_equal(pa.parts, pb.parts)


# ------------------------------------------------------------------------------ Parser basics

def test_parser_describes_itself(onnx_parser, models):
    p = onnx_parser
    assert p.device == "cpu" and p.providers == ["CPUExecutionProvider"]
    assert p.layout == "products-v1"
    assert p.decode == {"ctr_score": 0.3, "mask_thr": 0.8, "cate_score_thr": 0.3, "max_instances": K}
    assert len(p.classes) == 20 and p.classes[0] == "background"
    assert "onnxruntime" in repr(p) and "CPUExecutionProvider" in repr(p)


def test_predict_result_contents(onnx_parser, images):
    img = images[0]
    res = onnx_parser.predict(img)
    assert isinstance(res, ParseResult)
    assert 0 < res.num_persons <= K
    scores = [p.score for p in res]
    assert scores == sorted(scores, reverse=True)
    assert res.image_shape == img.shape[:2]
    assert set(res.timings) == {"preprocess", "network", "postprocess"}
    assert all(v >= 0 for v in res.timings.values())
    labelled = [p for p in res if p.area > 0]
    assert labelled
    for p in labelled:
        assert p.parts.shape == img.shape[:2] and p.parts.dtype == np.uint8
        assert p.mask.dtype == bool and p.mask.sum() == p.area
        x0, y0, x1, y1 = p.bbox
        assert p.mask[y0:y1, x0:x1].sum() == p.area
        assert p.part_ids and all(1 <= i < 20 for i in p.part_ids)
    assert res.semantic.shape == img.shape[:2] and res.semantic.max() > 0
    assert res.instance_map.max() <= res.num_persons
    overlay = res.draw(img)  # the legend never hides a person: beside the image when no room is left
    assert overlay.shape[0] == img.shape[0] and overlay.shape[1] >= img.shape[1]
    assert not np.array_equal(overlay[:, :img.shape[1]], img)


def test_input_kinds(onnx_parser, images, tmp_path):
    p = onnx_parser
    img = images[1]
    ref = p.predict(img)
    assert ref.num_persons > 0
    # a file path (str and Path)
    path = atomic_imwrite(tmp_path / "img.png", img)
    assert_same_result(p.predict(str(path)), ref)
    assert p.predict(path).source == str(path)
    # RGB array with color="rgb"
    assert_same_result(p.predict(img[:, :, ::-1].copy(), color="rgb"), ref)
    # BGRA = BGR + alpha; call syntax
    bgra = np.dstack([img, np.full(img.shape[:2], 7, np.uint8)])
    assert_same_result(p(bgra), ref)
    # grayscale HxW and HxWx1 = the gray image replicated to 3 channels
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    gref = p.predict(np.repeat(gray[:, :, None], 3, axis=2))
    assert_same_result(p.predict(gray), gref)
    assert_same_result(p.predict(gray[:, :, None]), gref)
    # floats in [0, 1] and in [0, 255], uint16: close to the uint8 result (resize rounding differs)
    for arr in (img.astype(np.float32) / 255.0, img.astype(np.float64), img.astype(np.uint16)):
        res = p.predict(arr)
        assert res.image_shape == img.shape[:2]
        assert abs(res.num_persons - ref.num_persons) <= 2
    assert_same_result(p.predict(img.astype(np.uint16)), ref)  # values <= 255: identical after clipping
    # a grayscale PNG file
    gpath = atomic_imwrite(tmp_path / "gray.png", gray)
    assert_same_result(p.predict(gpath), gref)


def test_predict_batch(onnx_parser, images):
    p = onnx_parser
    same = [images[0], images[0][:, ::-1].copy(), images[0]]
    batch = p.predict_batch(same, batch_size=2)
    single = [p.predict(im) for im in same]
    assert len(batch) == 3
    for a, b in zip(batch, single):
        assert_same_result(a, b)
    # mixed sizes: one result per image, at its own size
    mixed = p.predict_batch(images)
    assert [r.image_shape for r in mixed] == [im.shape[:2] for im in images]
    assert all(r.num_persons > 0 for r in mixed)
    assert p.predict_batch([]) == []
    with pytest.raises(TypeError, match="list of images"):
        p.predict_batch(images[0])
    with pytest.raises(ValueError, match="batch_size"):
        p.predict_batch(images, batch_size=0)


def test_decode_overrides(onnx_parser, models, images):
    img = images[0]
    base = onnx_parser.predict(img)
    strict = onnx_parser.predict(img, ctr_score=0.99)
    assert strict.num_persons == 0
    assert onnx_parser.predict(img, max_instances=2).num_persons == min(2, base.num_persons)
    with Parser(models["onnx"], ctr_score=0.99, **KW) as p:
        assert p.decode["ctr_score"] == 0.99
        assert p.predict(img).num_persons == 0
    assert onnx_parser.decode["ctr_score"] == 0.3  # per-call overrides do not stick


@pytest.mark.parametrize("kw,exc,match", [
    ({"ctr_scor": 0.3}, TypeError, "unknown decode option"),
    ({"ctr_score": 1.5}, ValueError, r"ctr_score must lie in \[0.0, 1.0\]"),
    ({"mask_thr": -2}, ValueError, "mask_thr"),
    ({"cate_score_thr": float("nan")}, ValueError, "cate_score_thr"),
    ({"ctr_score": "0.3"}, TypeError, "must be a number"),
    ({"ctr_score": True}, TypeError, "must be a number"),
    ({"max_instances": 0}, ValueError, "positive integer"),
    ({"max_instances": K + 1}, ValueError, "instance slots"),
])
def test_decode_override_validation(models, onnx_parser, kw, exc, match):
    with pytest.raises(exc, match=match):
        Parser(models["onnx"], **KW, **kw)
    with pytest.raises(exc, match=match):
        onnx_parser.predict(np.zeros((32, 32, 3), np.uint8), **kw)


# ------------------------------------------------------------------------------ error paths

def test_image_error_paths(onnx_parser, tmp_path):
    p = onnx_parser
    with pytest.raises(FileNotFoundError):
        p.predict(tmp_path / "missing.jpg")
    bad = tmp_path / "corrupt.jpg"
    bad.write_bytes(b"this is not a jpeg")
    with pytest.raises(ValueError, match="cannot decode"):
        p.predict(bad)
    empty_file = tmp_path / "empty.png"
    empty_file.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        p.predict(empty_file)
    with pytest.raises(ValueError, match="empty"):
        p.predict(np.zeros((0, 10, 3), np.uint8))
    for dtype in (bool, np.complex64, object):
        with pytest.raises(TypeError, match="dtype"):
            p.predict(np.zeros((8, 8, 3), dtype))
    with pytest.raises(ValueError, match="shape"):
        p.predict(np.zeros((8, 8, 2), np.uint8))
    with pytest.raises(TypeError, match="path or a numpy array"):
        p.predict([[1, 2], [3, 4]])
    with pytest.raises(ValueError, match="color"):
        p.predict(np.zeros((8, 8, 3), np.uint8), color="hsv")


def test_model_error_paths(models, tmp_path):
    weird = tmp_path / "model.xyz"
    weird.write_bytes(b"x")
    with pytest.raises(UnknownModelType, match="unknown model file type '.xyz'"):
        Parser(weird)
    with pytest.raises(ValueError, match="unknown model file type"):
        Parser(tmp_path / "noext")
    with pytest.raises(FileNotFoundError):
        Parser(tmp_path / "missing.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a protobuf")
    with pytest.raises(ValueError, match="cannot load"):
        Parser(garbage, **KW)
    # a valid ONNX file without UniParser metadata
    import onnx
    proto = onnx.load(str(models["onnx"]))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    with pytest.raises(ValueError, match="no UniParser metadata"):
        Parser(bare, **KW)
    with pytest.raises(ValueError, match="device"):
        Parser(models["onnx"], device="tpu")
    import onnxruntime as ort
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(RuntimeError, match="CUDAExecutionProvider"):
            Parser(models["onnx"], device="cuda")
    with pytest.raises(ValueError, match="not available"):
        Parser(models["onnx"], providers=["NoSuchExecutionProvider"])


def test_close_and_context_manager(models, images):
    with Parser(models["onnx"], warmup=(64, 64), **KW) as p:
        assert p.predict(images[1]).num_persons > 0
    assert p.closed
    p.close()  # idempotent
    with pytest.raises(BackendClosedError):
        p.predict(images[1])


def test_warmup_default_shape(models):
    p = Parser(models["onnx"], warmup=True, **KW)
    p.close()


# ------------------------------------------------------------------------------ backend agreement

@pytest.fixture(scope="module")
def torch_results(torch_parser, images):
    return torch_parser.predict_batch(images, batch_size=1)


def test_pth_and_onnx_agree(torch_parser, torch_results, images, onnx_parser):
    tp = torch_parser
    assert tp.device == "cpu" and tp.providers[0].startswith("torch")
    assert tp.decode == onnx_parser.decode
    assert tp.classes == onnx_parser.classes
    total = identical = 0
    for img, tr in zip(images, torch_results):
        orr = onnx_parser.predict(img)
        assert_agree(tr, orr)
        total += tr.num_persons
        identical += sum(np.array_equal(p.parts, q.parts) for p, q in zip(tr, orr))
    assert total > 0
    assert identical >= 0.8 * total  # most maps are bit-identical


def test_pth_matches_reference_decode(torch_parser, torch_results, images):
    """Parser(.pth) (EndToEnd products + numpy finishing) == the torch reference decode_single."""
    import torch

    from uniparser_sdk.model.decode import decode_single
    from uniparser_sdk.runtime.preprocess import preprocess

    model, info = torch_parser.backend.model, torch_parser.backend.info
    img = images[2]  # shrink geometry
    x, meta = preprocess(img, SCALE)
    with torch.no_grad():
        c, ins, sem = model(torch.from_numpy(x))
    ref = decode_single(c[0], ins[0], sem[0], model.seg_kernels, meta.img_shape, meta.ori_shape, info["config"].decode)
    res = torch_results[2]
    assert res.num_persons == ref.count > 0
    np.testing.assert_allclose([q.score for q in res], ref.scores[:ref.count].numpy(), atol=1e-6)
    for person, m in zip(res, ref.part_maps.numpy()):
        np.testing.assert_array_equal(person.parts, m)


@pytest.mark.parametrize("mask_thr", [0.7, 0.85])
def test_mask_thr_override_reaches_every_decode_step(torch_parser, images, mask_thr):
    """Parser(..., mask_thr=) == decode_single with that mask_thr: the graph's instance masks and
    maskness numerator and the host finishing's foreground test all use it (DESIGN §3)."""
    import torch

    from uniparser_sdk.model.decode import decode_single
    from uniparser_sdk.runtime.preprocess import preprocess

    model, info = torch_parser.backend.model, torch_parser.backend.info
    img = images[0]
    x, meta = preprocess(img, SCALE)
    with torch.no_grad():
        c, ins, sem = model(torch.from_numpy(x))
    cfg = info["config"].decode.updated(mask_thr=mask_thr)
    ref = decode_single(c[0], ins[0], sem[0], model.seg_kernels, meta.img_shape, meta.ori_shape, cfg)
    res = torch_parser.predict(img, mask_thr=mask_thr)
    assert res.num_persons == ref.count > 0 and sum(p.area for p in res) > 0
    for person, m in zip(res, ref.part_maps.numpy()):
        np.testing.assert_array_equal(person.parts, m)


def test_light_model_end_to_end(tmp_path, images):
    """Light variant (feature maps one cell larger on each side): Parser(.pth) == decode_single."""
    import torch

    from uniparser_sdk.model.checkpoint import save_checkpoint, with_decode
    from uniparser_sdk.model.configs import get_config
    from uniparser_sdk.model.decode import decode_single
    from uniparser_sdk.model.uniparser import UniParser
    from uniparser_sdk.runtime.preprocess import preprocess

    torch.manual_seed(1)
    cfg = with_decode(get_config("tiny-light"), mask_thr=0.8, max_instances=4)
    model = UniParser(cfg).eval()
    img = images[1]
    scale = (128, 96)
    x, meta = preprocess(img, scale)
    with torch.no_grad():
        model.mask_head.center_heatmap.bias.fill_(0.0)
    aligned_kernels(model, scale)
    with torch.no_grad():
        c, ins, sem = model(torch.from_numpy(x))
    assert ins.shape[-2:] == (x.shape[2] // 4 + 2, x.shape[3] // 4 + 2)
    ref = decode_single(c[0], ins[0], sem[0], model.seg_kernels, meta.img_shape, meta.ori_shape, cfg.decode)
    with Parser(save_checkpoint(tmp_path / "light.pth", model), device="cpu", scale=scale) as p:
        res = p.predict(img)
    assert res.num_persons == ref.count > 0
    assert sum(q.area for q in res) > 0
    for person, m in zip(res, ref.part_maps.numpy()):
        np.testing.assert_array_equal(person.parts, m)


# ------------------------------------------------------------------------------ threads

def test_thread_safety(onnx_parser, images):
    work = [images[i % 3] for i in range(8)]
    serial = [onnx_parser.predict(im) for im in work]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(onnx_parser.predict, work))
    for a, b in zip(serial, parallel):
        assert_same_result(a, b, score_tol=0)


# ------------------------------------------------------------------------------ writers

def test_writers_round_trip(onnx_parser, images, tmp_path):
    img = images[0]
    res = onnx_parser.predict(img)
    assert res.num_persons > 0
    paths = res.write_mhp(tmp_path / "mhp", "img1")
    assert len(paths) == res.num_persons
    for person, path in zip(res, paths):
        assert path.name == f"img1_{res.num_persons:02d}_{paths.index(path) + 1:02d}.png"
        np.testing.assert_array_equal(imread(path, cv2.IMREAD_UNCHANGED), person.parts)
    cat, hum = res.write_cihp(tmp_path / "cihp", "img1")
    np.testing.assert_array_equal(imread(cat, cv2.IMREAD_UNCHANGED), res.semantic)
    np.testing.assert_array_equal(imread(hum, cv2.IMREAD_UNCHANGED), res.instance_map.astype(np.uint8))
    jpath = res.write_json(tmp_path / "r.json", include_parts=True)
    back = ParseResult.from_dict(json.loads(jpath.read_text()))
    assert_same_result(back, res, score_tol=0)
    assert back.timings == res.timings
    ov = res.save_overlay(tmp_path / "ov.png", img)
    np.testing.assert_array_equal(imread(ov), res.draw(img))
    assert not list(tmp_path.rglob("*.tmp"))


# ------------------------------------------------------------------------------ torch never imported

def test_onnx_path_never_imports_torch(models, images, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    atomic_imwrite(folder / "a.png", images[1])
    code = textwrap.dedent(f"""
        import sys
        class BlockTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked in this test")
                return None
        sys.meta_path.insert(0, BlockTorch())
        import numpy as np
        import uniparser_sdk
        from uniparser_sdk import Parser
        with Parser({str(models['onnx'])!r}, device="cpu", scale={SCALE!r}) as p:
            r = p.predict(np.zeros((64, 80, 3), np.uint8))
            r.draw(np.zeros((64, 80, 3), np.uint8))
        from uniparser_sdk.cli.predict import main
        rc = main([{str(models['onnx'])!r}, {str(folder)!r}, "-o", {str(tmp_path / 'out')!r}, "-q",
                   "--scale", "{SCALE[0]}x{SCALE[1]}"])
        assert rc == 0, rc
        assert not [m for m in sys.modules if m == "torch" or m.startswith("torch.")]
        print("NO-TORCH-OK")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "NO-TORCH-OK" in out.stdout
    assert (tmp_path / "out" / "a_semantic.png").is_file()


# ------------------------------------------------------------------------------ CLI

def _cli(argv, capsys):
    from uniparser_sdk.cli.predict import main

    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_folder(models, images, tmp_path, capsys, onnx_parser):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    atomic_imwrite(src / "a.jpg", images[0])
    atomic_imwrite(src / "b.png", images[1])
    atomic_imwrite(src / "sub" / "c.png", images[2])
    (src / "notes.txt").write_text("ignored")
    out = tmp_path / "out"
    rc, stdout, err = _cli([models["onnx"], src, "-o", out, "-r", "--device", "cpu", "--scale", "x".join(map(str, SCALE)),
                            "--mhp", "--cihp", "--json-parts"], capsys)
    assert rc == 0, err
    assert "done: 3 image(s)" in stdout
    assert "a: " in stdout and "person(s)" in stdout and " ms" in stdout
    for rel, img_path in (("a", src / "a.jpg"), ("b", src / "b.png"), ("sub/c", src / "sub" / "c.png")):
        base = out / rel
        img = imread(img_path)
        res = onnx_parser.predict(img)
        sem = imread(base.with_name(base.name + "_semantic.png"), cv2.IMREAD_UNCHANGED)
        inst = imread(base.with_name(base.name + "_instances.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(sem, res.semantic)
        np.testing.assert_array_equal(inst, res.instance_map.astype(np.uint8))
        overlay = imread(base.with_name(base.name + "_overlay.jpg"))
        assert overlay.shape == res.draw(img).shape
        data = json.loads(base.with_name(base.name + ".json").read_text())
        assert data["num_persons"] == res.num_persons and data["source"] == str(img_path)
        assert_same_result(ParseResult.from_dict(data), res)
        assert len(list((out / "mhp").rglob(f"{base.name}_*.png"))) == res.num_persons
        assert (out / "cihp" / Path(rel).parent / "Category_ids" / f"{base.name}.png").is_file()
    assert not list(out.rglob("*.tmp")) and not list(out.rglob(".*"))


def test_cli_globs_videos_and_errors(models, images, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    atomic_imwrite(src / "a.png", images[1])
    atomic_imwrite(src / "b.png", images[1][:, ::-1].copy())
    video = src / "clip.avi"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (128, 96))
    assert vw.isOpened()
    for i in range(5):
        vw.write(np.roll(images[1], 8 * i, axis=1))
    vw.release()
    out = tmp_path / "out"
    common = ["--device", "cpu", "--scale", "x".join(map(str, SCALE)), "-q"]
    rc, stdout, err = _cli([models["onnx"], str(src / "*.png"), video, "--every", "2", "-o", out, *common], capsys)
    assert rc == 0, err
    assert "done: 5 image(s)" in stdout  # a, b + frames 0, 2, 4
    assert sorted(p.name for p in out.glob("*_semantic.png")) == [
        "a_semantic.png", "b_semantic.png", "clip_f000000_semantic.png", "clip_f000002_semantic.png",
        "clip_f000004_semantic.png"]
    # user mistakes: one line on stderr, exit code 2, no traceback
    for argv, match in [
        ([models["onnx"], tmp_path / "nope.png"], "input not found"),
        ([models["onnx"], str(tmp_path / "*.nomatch")], "no image or video files match"),
        ([tmp_path / "missing.onnx", src], "model file not found"),
        ([src / "a.png", src], "unknown model file type"),
        ([models["onnx"], src, "--every", "0"], "--every"),
        ([models["onnx"], src, "--ctr-score", "3"], "ctr_score"),
    ]:
        rc, stdout, err = _cli([*argv, "-o", out, *common], capsys)
        assert rc == 2, (argv, err)
        assert match in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1
    # an unreadable image among good ones: the others are written, exit code 2
    (src / "bad.png").write_bytes(b"garbage")
    rc, stdout, err = _cli([models["onnx"], src, "-o", tmp_path / "out2", *common], capsys)
    assert rc == 2 and "bad" in err and "Traceback" not in err
    assert (tmp_path / "out2" / "a_semantic.png").is_file()
    # --help
    from uniparser_sdk.cli.predict import main
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "uniparser-predict" in capsys.readouterr().out


def test_cli_collect_sources_names(tmp_path):
    from uniparser_sdk.cli.predict import UsageError, collect_sources

    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    for d in ("x", "y"):
        atomic_imwrite(tmp_path / d / "same.png", np.zeros((4, 4), np.uint8))
    srcs = collect_sources([str(tmp_path / "x" / "same.png"), str(tmp_path / "y" / "same.png"),
                            str(tmp_path / "x" / "same.png")])
    assert [str(s.rel) for s in srcs] == ["same", "same-2"]  # duplicates dropped, names made distinct
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no images in folder"):
        collect_sources([str(tmp_path / "empty")])
    (tmp_path / "doc.txt").write_text("x")
    with pytest.raises(UsageError, match="not an image or video"):
        collect_sources([str(tmp_path / "doc.txt")])


# TensorRT backend (sidecar, profiles, build and inference on fakes generated from the real
# bindings, GPU engine test): tests/test_tensorrt_backend.py and tests/test_tensorrt_api.py


# ------------------------------------------------------------------------------ GPU (make test-gpu)

@pytest.mark.gpu
def test_gpu_backends_agree(models, images, onnx_parser):
    import onnxruntime as ort

    with Parser(models["pth"], device="cuda", scale=SCALE) as tp:
        assert tp.device.startswith("cuda")
        for img in images:
            assert_agree(tp.predict(img), onnx_parser.predict(img))
    if "CUDAExecutionProvider" in ort.get_available_providers():
        with Parser(models["onnx"], device="cuda", scale=SCALE) as gp:
            assert gp.providers[0] == "CUDAExecutionProvider" and gp.device == "cuda"
            assert_agree(gp.predict(images[0]), onnx_parser.predict(images[0]))
