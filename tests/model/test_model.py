"""Model core: official key layout, DCNv2 against a naive reference, parameter counts, checkpoints."""

import numpy as np
import pytest
import torch

from uniparser_sdk.model.checkpoint import CheckpointError, infer_config, load_model, save_checkpoint
from uniparser_sdk.model.configs import CONFIGS, get_config
from uniparser_sdk.model.dcn import ModulatedDeformConv2d, deform_conv2d_torch
from uniparser_sdk.model.uniparser import UniParser, parameter_breakdown

from _official_layout import official_keys


# ---------------------------------------------------------------- official key list (from DESIGN §2)
@pytest.mark.parametrize("name,depth,light,ncls", [("r50", 50, False, 59), ("r50-light", 50, True, 59),
                                                   ("r101", 101, False, 59), ("r101-cihp-light", 101, True, 20)])
def test_state_dict_matches_official_layout(name, depth, light, ncls):
    ours = {k: tuple(v.shape) for k, v in UniParser(name).state_dict().items()}
    expected = official_keys(depth, light, ncls)
    assert set(ours) == set(expected), (sorted(set(ours) - set(expected))[:5], sorted(set(expected) - set(ours))[:5])
    assert ours == expected


def _fake_official(depth, light, ncls, seed=0):
    g = torch.Generator().manual_seed(seed)
    sd = {k: (torch.randn(s, generator=g) if s else torch.tensor(0)) for k, s in official_keys(depth, light, ncls).items()}
    for k in sd:
        if k.endswith("running_var"):
            sd[k] = sd[k].abs() + 0.5
    return {"state_dict": sd, "meta": {"CLASSES": ["x"] * (ncls - 1), "mmdet_version": "2.25.0"}}


@pytest.mark.parametrize("depth,light,ncls,name", [(50, False, 59, "r50"), (101, True, 20, "r101-cihp-light")])
def test_official_checkpoint_loads_and_variant_is_inferred(tmp_path, depth, light, ncls, name):
    ckpt = _fake_official(depth, light, ncls)
    path = tmp_path / "official.pth"
    torch.save(ckpt, path)
    model, info = load_model(path)
    assert info["format"] == "mmdetection"
    cfg = info["config"]
    assert (cfg.depth, cfg.light, cfg.num_classes, cfg.name) == (depth, light, ncls, name)
    assert info["ignored_keys"] == []
    sd = model.state_dict()
    for k in ("backbone.layer3.5.conv2.conv_offset.weight", "mask_head.seg_kernels", "neck.fpn_convs.3.conv.bias"):
        if k in ckpt["state_dict"]:
            assert torch.equal(sd[k], ckpt["state_dict"][k])


def test_infer_config_depth_from_blocks():
    sd = {k: torch.zeros(s) for k, s in official_keys(101, False, 59).items()}
    cfg = infer_config(sd)
    assert cfg.blocks == (3, 4, 23, 3) and cfg.depth == 101 and not cfg.light
    assert cfg.decode.ctr_score == pytest.approx(0.1)  # MHP R101 default


def test_checkpoint_is_loaded_weights_only(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"mask_head.seg_kernels": torch.zeros(2, 2)}, "x": Evil()}, path)
    with pytest.raises(CheckpointError, match="weights-only"):
        load_model(path)


def test_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "missing.pth")
    p = tmp_path / "notours.pth"
    torch.save({"state_dict": {"fc.weight": torch.zeros(2)}}, p)
    with pytest.raises(CheckpointError, match="not a UniParser"):
        load_model(p)
    p2 = tmp_path / "garbage.pth"
    p2.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_model(p2)


def test_our_checkpoint_round_trip(tmp_path):
    model = UniParser("tiny").eval()
    path = save_checkpoint(tmp_path / "m.pth", model, meta={"note": "t"})
    loaded, info = load_model(path)
    assert info["format"] == "uniparser-sdk" and info["config"] == model.config
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        for a, b in zip(model(x), loaded(x)):
            assert torch.equal(a, b)
    assert not list(tmp_path.glob("*.tmp"))


# ---------------------------------------------------------------- parameter counts (paper Table 2)
def test_parameter_counts_within_3_percent_of_table2():
    full = parameter_breakdown(UniParser("r50"))["total"]
    light = parameter_breakdown(UniParser("r50-light"))["total"]
    assert (full, light) == (35_855_138, 30_087_970)  # regression guard for the layer layout
    assert abs(full / 36.73e6 - 1) < 0.03
    assert abs(light / 30.54e6 - 1) < 0.03
    # the only difference between the variants is the two converters: 2 x (3x3x1280x256) vs 2 x (1x1x256x256)
    assert full - light == 2 * (1280 * 9 * 256 - 256 * 256)


# ---------------------------------------------------------------- DCNv2 against a naive reference
def naive_modulated_deform_conv(x, offset, mask, weight, stride, pad):
    """Per output pixel / tap / corner loops (mmcv semantics: zero outside, per-corner bounds)."""
    x, offset, mask, weight = (t.double().numpy() for t in (x, offset, mask, weight))
    n, c, h, w = x.shape
    cout, _, kh, kw = weight.shape
    ho, wo = offset.shape[-2:]
    out = np.zeros((n, cout, ho, wo))
    for b in range(n):
        for oy in range(ho):
            for ox in range(wo):
                col = np.zeros((c, kh * kw))
                for k in range(kh * kw):
                    ky, kx = divmod(k, kw)
                    py = oy * stride - pad + ky + offset[b, 2 * k, oy, ox]
                    px = ox * stride - pad + kx + offset[b, 2 * k + 1, oy, ox]
                    val = np.zeros(c)
                    if -1 < py < h and -1 < px < w:
                        y0, x0 = int(np.floor(py)), int(np.floor(px))
                        for yy, wy in ((y0, 1 - (py - y0)), (y0 + 1, py - y0)):
                            for xx, wx in ((x0, 1 - (px - x0)), (x0 + 1, px - x0)):
                                if 0 <= yy < h and 0 <= xx < w:
                                    val += wy * wx * x[b, :, yy, xx]
                    col[:, k] = val * mask[b, k, oy, ox]
                out[b, :, oy, ox] = weight.reshape(cout, c * kh * kw) @ col.reshape(-1)
    return out


@pytest.mark.parametrize("stride", [1, 2])
def test_dcn_matches_naive_reference(stride):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 7, 9, generator=g)
    ho, wo = (7 + 2 - 3) // stride + 1, (9 + 2 - 3) // stride + 1
    offset = torch.randn(2, 18, ho, wo, generator=g) * 2.5  # large: many samples fall outside
    mask = torch.rand(2, 9, ho, wo, generator=g)
    weight = torch.randn(4, 3, 3, 3, generator=g)
    got = deform_conv2d_torch(x, offset, mask, weight, None, stride, 1, 1).double().numpy()
    ref = naive_modulated_deform_conv(x, offset, mask, weight, stride, 1)
    assert np.abs(got - ref).max() < 1e-4
    assert np.abs(ref).max() > 1.0  # not vacuous


def test_dcn_zero_offsets_equal_half_plain_conv():
    layer = ModulatedDeformConv2d(4, 6, 3, stride=1, padding=1)
    x = torch.randn(1, 4, 8, 8)
    plain = torch.nn.functional.conv2d(x, layer.weight, padding=1)
    assert torch.allclose(layer(x), 0.5 * plain, atol=1e-5)  # sigmoid(0) = 0.5 modulation


def test_dcn_offset_layout_is_dy_dx_interleaved():
    # Move only tap 4 (the centre) by dx = +1: output = weight_centre * x shifted left by one.
    x = torch.arange(25.0).view(1, 1, 5, 5)
    weight = torch.zeros(1, 1, 3, 3)
    weight[0, 0, 1, 1] = 1.0
    offset = torch.zeros(1, 18, 5, 5)
    offset[:, 2 * 4 + 1] = 1.0
    out = deform_conv2d_torch(x, offset, torch.ones(1, 9, 5, 5), weight, None, 1, 1, 1)
    expected = torch.zeros(5, 5)
    expected[:, :4] = x[0, 0, :, 1:]
    assert torch.equal(out[0, 0], expected)


def test_dcn_exports_as_standard_deformconv(tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    layer = ModulatedDeformConv2d(4, 8, 3, stride=2, padding=1).eval()
    torch.nn.init.normal_(layer.conv_offset.weight, std=0.2)
    torch.nn.init.normal_(layer.conv_offset.bias, std=0.5)
    path = tmp_path / "dcn.onnx"
    torch.onnx.export(layer, (torch.randn(1, 4, 16, 16),), str(path), dynamo=False, opset_version=19,
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}})
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    assert [n.op_type for n in proto.graph.node].count("DeformConv") == 1
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(2, 4, 13, 21)  # a shape not used at export
    with torch.no_grad():
        ref = layer(x).numpy()
    assert np.abs(sess.run(None, {"x": x.numpy()})[0] - ref).max() < 1e-4


# ---------------------------------------------------------------- forward shapes
@pytest.mark.parametrize("name", ["tiny", "tiny-light"])
def test_forward_shapes(name):
    model = UniParser(name).eval()
    cfg = get_config(name)
    with torch.no_grad():
        center, ins, sem = model(torch.randn(2, 3, 96, 128))
    extra = 2 if cfg.light else 0  # the light converters' padding quirk
    assert center.shape == (2, 1, cfg.num_grid, cfg.num_grid)
    assert ins.shape == sem.shape == (2, cfg.head_channels, 24 + extra, 32 + extra)
    assert model.seg_kernels.shape == (cfg.num_classes - 1, cfg.head_channels)


def test_frozen_batchnorm_stays_in_eval_mode_when_training():
    model = UniParser("tiny").train()
    bns = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(not m.training for m in bns)
    before = bns[0].running_mean.clone()
    model(torch.randn(2, 3, 64, 64))
    assert torch.equal(bns[0].running_mean, before)


def test_named_configs_exist():
    assert {"r50", "r101", "r50-light", "r101-light", "tiny"} <= set(CONFIGS)
    with pytest.raises(ValueError, match="unknown config"):
        get_config("r18")
