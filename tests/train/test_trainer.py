"""Trainer: a short run learns, resume is exact, DDP replicas stay equal, checkpoints load, CLI errors."""
import json
import os
import socket

import numpy as np
import pytest
import torch

from uniparser_sdk.model.checkpoint import load_model, save_checkpoint
from uniparser_sdk.model.configs import get_config
from uniparser_sdk.model.uniparser import UniParser
from uniparser_sdk.train.trainer import TrainConfig, Trainer, lr_at, train

SMALL = dict(model="tiny", data="synthetic", short_sides=None, num_workers=0, progress=False, threads=1,
             synthetic_images=2000, optimizer="adamw", warmup_iters=5)


def test_lr_schedule():
    assert lr_at(0, 1.0, 10, 0.1, [20, 30]) == pytest.approx(0.1)
    assert lr_at(5, 1.0, 10, 0.1, [20, 30]) == pytest.approx(0.55)
    assert lr_at(10, 1.0, 10, 0.1, [20, 30]) == 1.0
    assert lr_at(20, 1.0, 10, 0.1, [20, 30]) == pytest.approx(0.1)
    assert lr_at(35, 1.0, 10, 0.1, [20, 30]) == pytest.approx(0.01)


def test_short_run_learns_and_writes_loadable_checkpoints(tmp_path):
    from uniparser_sdk.data import SyntheticScenes
    from uniparser_sdk.train.validation import evaluate_model

    cfg = TrainConfig(**SMALL, work_dir=str(tmp_path / "run"), iters=100, batch_size=4, lr=5e-4, bn_train=True,
                      synthetic_size=(96, 128), log_every=10, steps=(1000,))
    summary = Trainer(cfg).run()
    losses = [h["loss"] for h in summary["history"]]
    print("losses every 10 iterations:", losses)
    assert len(losses) == 10 and all(np.isfinite(losses))
    assert np.mean(losses[-2:]) < 0.8 * losses[0], losses
    log = [json.loads(line) for line in open(tmp_path / "run" / "log.jsonl")]
    assert log[-1]["iter"] == 100 and {"center", "ins", "sem", "neg", "parsing", "metric", "lr"} <= set(log[-1])
    # checkpoints: weights-only loadable, ours, accepted by load_model (as uniparser-export / Parser do)
    final = tmp_path / "run" / "final.pth"
    obj = torch.load(final, map_location="cpu", weights_only=True)
    assert obj["format"] == "uniparser-sdk/1" and "optimizer" not in obj
    assert obj["meta"]["classes"][5] == "upper-clothes" and obj["meta"]["input_scale"] == [128, 96]
    model, info = load_model(final)
    assert info["format"] == "uniparser-sdk" and model.config.name == "tiny"
    ckpt = torch.load(tmp_path / "run" / "iter_000100.pth", map_location="cpu", weights_only=True)
    assert ckpt["iteration"] == 100 and ckpt["optimizer"]["state"]
    # instances are found on scenes like the training ones (low center threshold: 100 iterations only)
    val = [SyntheticScenes(6, seed=99, size=(96, 128))[i] for i in range(6)]
    m = evaluate_model(model, val, model.config.decode.updated(ctr_score=0.05))
    assert m["num_pred"] > 0 and m["num_gt"] > 0


def test_resume_restores_iteration_and_next_step_loss(tmp_path):
    common = dict(SMALL, iters=4, batch_size=2, lr=1e-3, synthetic_size=(64, 96), log_every=1, ckpt_every=2)
    a = train(TrainConfig(**common, work_dir=str(tmp_path / "a")))
    ck = tmp_path / "a" / "iter_000002.pth"
    assert ck.is_file() and (tmp_path / "a" / "last_checkpoint").read_text().strip() == "iter_000004.pth"
    b = train(TrainConfig(**common, work_dir=str(tmp_path / "b"), resume=str(ck)))
    la = {h["iter"]: h["loss"] for h in a["history"]}
    lb = {h["iter"]: h["loss"] for h in b["history"]}
    assert sorted(lb) == [3, 4]  # resumed at iteration 2
    for it in (3, 4):
        assert lb[it] == pytest.approx(la[it], rel=1e-5, abs=1e-6)
    sa = torch.load(tmp_path / "a" / "final.pth", weights_only=True)["state_dict"]
    sb = torch.load(tmp_path / "b" / "final.pth", weights_only=True)["state_dict"]
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=1e-5, atol=1e-6)
    # resume=auto picks the newest checkpoint: nothing left to do, final weights unchanged
    c = train(TrainConfig(**common, work_dir=str(tmp_path / "a"), resume="auto"))
    assert c["iterations"] == 4 and c["history"] == []


def test_init_from_checkpoint_of_another_dataset(tmp_path, capsys):
    src = UniParser(get_config("tiny", num_classes=59))  # an "MHPv2" tiny model
    path = tmp_path / "official.pth"
    torch.save({"state_dict": src.state_dict(), "meta": {}}, path)  # mmdetection-style file
    t = Trainer(TrainConfig(**SMALL, work_dir=str(tmp_path / "ft"), iters=1, batch_size=2,
                            synthetic_size=(64, 96), init=str(path)))
    t._setup()
    err = capsys.readouterr().err
    assert "skipped" in err and "seg_kernels" in err
    torch.testing.assert_close(t.model.state_dict()["neck.lateral_convs.0.conv.weight"],
                               src.state_dict()["neck.lateral_convs.0.conv.weight"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, work_dir, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    cfg = TrainConfig(**dict(SMALL, threads=1), work_dir=work_dir, iters=3, batch_size=2, lr=1e-3,
                      synthetic_size=(64, 96), log_every=1, device="cpu")
    trainer = Trainer(cfg)
    summary = trainer.run()
    torch.save({"state": trainer.model.state_dict(), "history": summary["history"]},
               os.path.join(out_dir, f"rank{rank}.pt"))


def test_ddp_two_processes_gloo_keep_replicas_equal(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path / "ddp"), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    init = UniParser("tiny").state_dict()
    moved = 0
    for k, v in r0["state"].items():
        torch.testing.assert_close(v, r1["state"][k], rtol=0, atol=0)
        moved += int(not torch.equal(v, init[k])) if v.dtype.is_floating_point else 0
    assert moved > 10  # they trained (and equally)
    keys = ("loss", "center", "ins", "sem", "neg", "parsing", "metric")
    assert [[h[k] for k in keys] for h in r0["history"]] == [[h[k] for k in keys] for h in r1["history"]]
    assert (tmp_path / "ddp" / "final.pth").is_file()


def test_cli_help_and_user_errors(tmp_path, capsys):
    from uniparser_sdk.cli.train import main

    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0 and "--resume" in capsys.readouterr().out
    cases = [
        (["--config", "nope", "--iters", "1"], "unknown config"),
        (["--data", str(tmp_path / "missing"), "--iters", "1"], "not found"),
        (["--persons", "3,1", "--iters", "1"], "--persons"),
        (["--lr", "-1", "--iters", "1"], "--lr"),
        (["--synthetic-size", "96,64", "--iters", "1"], "WIDTHxHEIGHT"),
        (["--resume", str(tmp_path / "none.pth"), "--iters", "1", "--synthetic-size", "96x64",
          "--short-sides", "none", "--workers", "0", "--synthetic-images", "10"], "checkpoint not found"),
    ]
    for argv, msg in cases:
        assert main(argv + ["--work-dir", str(tmp_path / "w")]) == 2
        err = capsys.readouterr().err.strip()
        assert msg in err and len(err.splitlines()) == 1 and err.startswith("uniparser-train: error:"), err
    with pytest.raises(SystemExit) as e:
        main(["--epochs", "1", "--iters", "1"])
    assert e.value.code == 2


def test_cli_runs(tmp_path, capsys):
    from uniparser_sdk.cli.train import main

    rc = main(["--config", "tiny", "--data", "synthetic", "--iters", "2", "--batch-size", "2", "--synthetic-size",
               "96x64", "--short-sides", "64,80", "--max-long", "128", "--workers", "0", "--no-progress",
               "--optimizer", "adamw", "--lr", "1e-4", "--loss", "center=1.0,part_feature_metric=false",
               "--semantics", "corrected",
               "--work-dir", str(tmp_path / "cli"), "--synthetic-images", "100"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["iterations"] == 2 and os.path.isfile(out["final"])
    meta = torch.load(out["final"], weights_only=True)["meta"]
    assert meta["loss"]["center_weight"] == 1.0 and meta["loss"]["part_feature_metric"] is False
    assert meta["semantics"] == "corrected" and meta["train"]["semantics"] == "corrected"
    assert meta["train"]["synthetic_size"] == [64, 96]  # 96x64 = width 96, height 64
    assert meta["input_scale"] == [128, 80]
