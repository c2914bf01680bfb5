"""Parser.stream / predict_batch on generators, video sources and sinks, and uniparser-predict on videos,
stream URLs and cameras (annotated video, JSON lines, COCO file, Ctrl-C).

The model is the bundled default model (trained on the bundled synthetic scenes), exported once to ONNX;
the frames are the bundled sample scenes and videos OpenCV writes here.
"""
import functools
import http.server
import json
import os
import signal
import socketserver
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest

from uniparser_sdk.results import ParseResult, rle_decode
from uniparser_sdk.runtime import Parser
from uniparser_sdk.runtime.video import VideoOpenError, VideoSink, VideoSource, source_stem

ASSETS = Path(__file__).resolve().parents[2] / "uniparser_sdk" / "assets"
SCALE = (256, 192)  # small network inputs keep the CPU tests fast
K = 10


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    from uniparser_sdk.export.onnx_export import build_meta, export_onnx
    from uniparser_sdk.model.checkpoint import load_model

    model, info = load_model(ASSETS / "default_model.pth")
    path = tmp_path_factory.mktemp("stream_model") / "default.onnx"
    export_onnx(model, path, build_meta(model, info, max_instances=K), max_instances=K, sample_hw=(128, 160),
                parity=False, simplify=False, log=lambda *_: None)
    return path


@pytest.fixture(scope="module")
def parser(model_path):
    with Parser(model_path, device="cpu", scale=SCALE) as p:
        yield p


@pytest.fixture(scope="module")
def scenes():
    return [cv2.imread(str(ASSETS / "samples" / f"scene_{i:02d}.png")) for i in range(4)]


def write_video(path, frames, fps=10):
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (frames[0].shape[1], frames[0].shape[0]))
    assert vw.isOpened()
    for f in frames:
        vw.write(f)
    vw.release()
    return path


def clip_frames(scenes, n):
    return [np.roll(scenes[i % len(scenes)], 6 * i, axis=1) for i in range(n)]


def same(a: ParseResult, b: ParseResult):
    assert a.num_persons == b.num_persons
    for p, q in zip(a, b):
        assert p.score == q.score
        np.testing.assert_array_equal(p.parts, q.parts)


# ------------------------------------------------------------------------------ Parser.stream

def test_stream_in_order_equals_predict(parser, scenes):
    frames = clip_frames(scenes, 5)
    expected = [parser.predict(f) for f in frames]
    assert sum(r.num_persons for r in expected) > 0
    for batch_size, prefetch in ((1, 2), (3, 1)):  # same-size frames: batching changes nothing
        got = list(parser.stream(iter(frames), batch_size=batch_size, prefetch=prefetch))
        assert len(got) == len(frames)
        for a, b in zip(got, expected):
            same(a, b)
    pairs = list(parser.stream(frames, with_inputs=True))
    assert all(f is g for (f, _), g in zip(pairs, frames))
    # predict_batch on a generator: same results
    for a, b in zip(parser.predict_batch((f for f in frames), batch_size=2), expected):
        same(a, b)


def _big_frames(scene, n, pulled, hw=(720, 960)):
    for _ in range(n):
        pulled.append(1)
        yield cv2.resize(scene, (hw[1], hw[0]))  # a new 2 MB frame each time


@pytest.mark.parametrize("how", ["stream", "predict_batch"])
def test_generator_memory_is_bounded(parser, scenes, how):
    """30 frames of 720x960 (62 MB if held together) go through with a few frames in memory."""
    n, batch, prefetch = 30, 2, 1
    pulled = []
    frame_mb = 720 * 960 * 3 / 2 ** 20
    tracemalloc.start()
    try:
        gen = _big_frames(scenes[0], n, pulled)
        if how == "stream":
            seen = 0
            for res in parser.stream(gen, batch_size=batch, prefetch=prefetch, ctr_score=1.0):
                seen += 1
                assert len(pulled) - seen <= batch * (prefetch + 1)  # never read further ahead than this
            assert seen == n
        else:
            out = parser.predict_batch(gen, batch_size=batch, ctr_score=1.0)  # ctr_score 1: no person
            assert len(out) == n and not any(r.num_persons for r in out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(pulled) == n
    print(f"{how}: traced peak {peak / 2 ** 20:.1f} MiB for {n} frames of {frame_mb:.1f} MiB")
    assert peak / 2 ** 20 < 8 * frame_mb < n * frame_mb / 3, f"peak {peak / 2 ** 20:.1f} MiB"


def test_stream_errors_arrive_in_order(parser, scenes, tmp_path):
    def frames():
        yield scenes[0]
        yield scenes[1]
        raise RuntimeError("camera lost")

    got = []
    with pytest.raises(RuntimeError, match="camera lost"):
        for res in parser.stream(frames(), prefetch=2):
            got.append(res)
    assert len(got) == 2
    got = []
    with pytest.raises(FileNotFoundError):
        for res in parser.stream([scenes[0], tmp_path / "missing.png", scenes[1]], prefetch=1):
            got.append(res)
    assert len(got) == 1


def test_stream_early_close_stops_the_thread(parser, scenes):
    state = {"closed": False, "pulled": 0}

    def frames():
        try:
            while True:
                state["pulled"] += 1
                yield scenes[state["pulled"] % 4]
        finally:
            state["closed"] = True

    s = parser.stream(frames(), prefetch=2)
    for i, _ in enumerate(s):
        if i == 1:
            break
    s.close()
    assert state["closed"] and state["pulled"] <= 2 + 3
    assert not [t for t in threading.enumerate() if t.name == "uniparser-prefetch"]


def test_stream_checks_options_before_reading(parser, scenes):
    pulled = []

    def frames():
        pulled.append(1)
        yield scenes[0]

    with pytest.raises(TypeError):
        parser.stream("photo.jpg")
    with pytest.raises(ValueError, match="batch_size"):
        parser.stream(frames(), batch_size=0)
    with pytest.raises(ValueError, match="prefetch"):
        parser.stream(frames(), prefetch=-1)
    with pytest.raises(ValueError, match="ctr_score"):
        parser.stream(frames(), ctr_score=3)
    with pytest.raises(TypeError):
        parser.predict_batch(scenes[0])
    assert pulled == []


# ------------------------------------------------------------------------------ video source / sink

def test_video_source_and_sink(tmp_path, scenes):
    frames = clip_frames(scenes, 7)
    clip = write_video(tmp_path / "clip.avi", frames)
    with VideoSource(str(clip), every=3) as v:
        assert v.kind == "file" and v.fps == 10 and v.frame_count == 7 and v.expected_frames == 3
        got = list(v)
    with VideoSource(clip) as v:
        allf = list(v)
    assert len(allf) == 7 and len(got) == 3
    for g, i in zip(got, (0, 3, 6)):
        np.testing.assert_array_equal(g, allf[i])  # skipped frames grabbed, the kept ones identical
    with VideoSource(clip, max_frames=2) as v:
        assert len(list(v)) == 2
    with pytest.raises(VideoOpenError, match="not found"):
        VideoSource(tmp_path / "nope.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"junk")
    with pytest.raises(VideoOpenError, match="cannot open"):
        VideoSource(tmp_path / "junk.mp4")
    out = tmp_path / "o" / "annotated.mp4"
    with VideoSink(out, fps=5) as sink:
        for f in frames[:4]:
            sink.write(f)
        assert not out.exists()  # only the partial file while writing
        with pytest.raises(ValueError, match="size"):
            sink.write(frames[0][:100])
    assert out.is_file() and os.listdir(out.parent) == ["annotated.mp4"]
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    cap.release()
    with VideoSink(tmp_path / "empty.mp4", fps=5):
        pass
    assert not (tmp_path / "empty.mp4").exists()
    assert source_stem("rtsp://user:pw@cam.local:554/live/ch1?x=1") == "cam.local_554_live_ch1"
    assert source_stem("http://127.0.0.1:8000/clip.avi") == "127.0.0.1_8000_clip"
    assert source_stem("3") == "camera3" and source_stem("/a/b/clip.mp4") == "clip"


# ------------------------------------------------------------------------------ uniparser-predict

def _cli(argv, capsys):
    from uniparser_sdk.cli.predict import main

    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_video_outputs(model_path, parser, scenes, tmp_path, capsys):
    clip = write_video(tmp_path / "clip.avi", clip_frames(scenes, 7))
    out = tmp_path / "out"
    rc, stdout, err = _cli([model_path, clip, "-o", out, "--device", "cpu", "--scale", "x".join(map(str, SCALE)), "-q", "--every", "2",
                            "--batch-size", "2", "--save-video", "--jsonl", "--json-parts", "--coco",
                            out / "coco.json", "--threads", "1"], capsys)
    assert rc == 0, err
    with VideoSource(clip, every=2) as v:
        decoded = list(v)
    expected = [parser.predict(f) for f in decoded]
    assert "done: 4 image(s)" in stdout
    # JSON lines: one valid object per parsed frame, masks in COCO compressed RLE
    lines = (out / "clip.jsonl").read_text().splitlines()
    assert [json.loads(ln)["frame"] for ln in lines] == [0, 2, 4, 6]
    for ln, res in zip(lines, expected):
        d = json.loads(ln)
        assert abs(d["time_s"] - d["frame"] / 10) < 1e-9
        assert all(isinstance(p["mask"]["counts"], str) for p in d["persons"])
        same(ParseResult.from_dict(d), res)
    # the annotated video: 4 frames, the overlay with its side legend
    cap = cv2.VideoCapture(str(out / "clip_overlay.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 4 and cap.get(cv2.CAP_PROP_FPS) == 5
    ok, first = cap.read()
    cap.release()
    ref = expected[0].draw(decoded[0], legend="outside")
    h, w = ref.shape[:2]
    assert ok and first.shape == (h + h % 2, w + w % 2, 3)  # codecs want even sizes: padded by the sink
    assert np.abs(first[:h, :w].astype(int) - ref).mean() < 6  # lossy codec
    # no per-frame files without --frame-files, no temporary files
    assert sorted(p.name for p in out.iterdir()) == ["clip.jsonl", "clip_overlay.mp4", "coco.json"]
    coco = json.loads((out / "coco.json").read_text())
    assert sorted({e["image_id"] for e in coco}) == [f"clip_f{i:06d}" for i in (0, 2, 4, 6) if expected[i // 2].num_persons]
    assert len(coco) == sum(r.num_persons for r in expected)


def _serve(directory):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def test_cli_stream_url_and_camera(model_path, scenes, tmp_path, capsys):
    write_video(tmp_path / "live.avi", clip_frames(scenes, 5))
    srv = _serve(tmp_path)
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/live.avi"
        out = tmp_path / "out"
        rc, stdout, err = _cli([model_path, url, "-o", out, "--device", "cpu", "--scale", "x".join(map(str, SCALE)), "-q", "--jsonl",
                                "--max-frames", "3"], capsys)
    finally:
        srv.shutdown()
        srv.server_close()
    assert rc == 0, err
    stem = f"127.0.0.1_{srv.server_address[1]}_live"
    assert [json.loads(ln)["frame"] for ln in (out / f"{stem}.jsonl").read_text().splitlines()] == [0, 1, 2]
    # a camera index that no camera answers: one error line naming it, exit code 2
    rc, stdout, err = _cli([model_path, "7", "-o", out, "--device", "cpu", "-q", "--jsonl"], capsys)
    assert rc == 2 and "cannot open camera 7" in err and "Traceback" not in err
    rc, stdout, err = _cli([model_path, "7", "-o", out, "-q", "--batch-size", "0"], capsys)
    assert rc == 2 and "--batch-size" in err


def test_cli_ctrl_c_leaves_valid_outputs(model_path, scenes, tmp_path):
    clip = write_video(tmp_path / "long.avi", clip_frames(scenes, 80))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "uniparser_sdk.cli.predict", str(model_path), str(clip), "-o", str(out), "--device",
           "cpu", "--scale", "x".join(map(str, SCALE)), "-q", "--save-video", "--jsonl", "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:  # wait until 2 frames are written
            partial = [p for p in out.glob(".long.jsonl.*")] if out.is_dir() else []
            if partial and partial[0].read_text().count("\n") >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err and "Traceback" not in err
    lines = (out / "long.jsonl").read_text().splitlines()
    assert 2 <= len(lines) < 80
    assert [json.loads(ln)["frame"] for ln in lines] == list(range(len(lines)))
    cap = cv2.VideoCapture(str(out / "long_overlay.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    assert n == len(lines)  # every parsed frame is in the finalised video
    assert sorted(p.name for p in out.iterdir()) == ["long.jsonl", "long_overlay.mp4"]


# ------------------------------------------------------------------------------ normalisation from the metadata

def _with_normalization(src, dst, norm):
    import onnx

    from uniparser_sdk.contract import PREFIX

    proto = onnx.load(str(src))
    for p in proto.metadata_props:
        if p.key == PREFIX + "normalization":
            p.value = json.dumps(norm)
    onnx.save(proto, str(dst))
    return dst


def test_normalisation_once_from_metadata(model_path, parser, scenes, tmp_path):
    """A model that wants BGR input gets BGR: same numbers as the RGB model fed the channel-swapped image."""
    from uniparser_sdk.contract.constants import MEAN_RGB, STD_RGB
    from uniparser_sdk.runtime.preprocess import Normalization, preprocess

    bgr_model = _with_normalization(model_path, tmp_path / "bgr.onnx",
                                    {"mean": list(MEAN_RGB), "std": list(STD_RGB), "color": "bgr"})
    img = scenes[1]
    with Parser(bgr_model, device="cpu", scale=SCALE) as p:
        assert p._norm == Normalization(MEAN_RGB, STD_RGB, "bgr") and not hasattr(p, "_renormalize")
        swapped = img[:, :, ::-1].copy()
        same(p.predict(img), parser.predict(swapped))
        same(p.predict(swapped, color="rgb"), parser.predict(img, color="rgb"))  # input order honoured too
    # custom statistics: the batch the backend sees is (pixel - mean) / std, computed once
    norm = {"mean": [10.0, 20.0, 30.0], "std": [2.0, 4.0, 8.0], "color": "rgb"}
    x, meta = preprocess(img, scale=(384, 288), norm=norm)
    h, w = meta.img_shape
    rgb = img[:, :, ::-1].astype(np.float32)
    np.testing.assert_allclose(x[0, :, :h, :w], ((rgb - [10, 20, 30]) / [2, 4, 8]).transpose(2, 0, 1), rtol=1e-6)
    custom = _with_normalization(model_path, tmp_path / "custom.onnx", norm)
    with Parser(custom, device="cpu", scale=SCALE) as p:
        assert p._norm == Normalization.from_meta(norm)
    with pytest.raises(ValueError, match="color"):
        Parser(_with_normalization(model_path, tmp_path / "bad.onnx", {"color": "yuv"}), device="cpu")
