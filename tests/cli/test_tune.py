"""uniparser-tune: metrics of a checkpoint with the reference decode, threshold search, --write."""
import json

import pytest

pytest.importorskip("torch")

from uniparser_sdk.cli import tune  # noqa: E402


def test_tune_evaluates_searches_and_writes(tmp_path, capsys):
    from conftest import DEFAULT_MODEL
    from uniparser_sdk.model.checkpoint import load_model

    out = tmp_path / "tuned.pth"
    assert tune.main([DEFAULT_MODEL, "--synthetic", "3", "--seed", "5", "--size", "160x128", "--tune",
                      "--write", str(out), "--threads", "1"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["metrics"]["num_images"] == 3 and rep["metrics"]["num_gt"] >= 3
    assert len(rep["tuning"]) == 25 and 0 <= rep["metrics"]["AP50"] <= 1
    model, info = load_model(out)
    assert model.config.decode.ctr_score == rep["decode"]["ctr_score"]
    assert info["meta"]["decode_tuned_on"].startswith("SyntheticScenes")


@pytest.mark.parametrize("argv,msg", [
    (["missing.pth"], "checkpoint not found"),
    (["{model}", "--size", "128,160"], "WIDTHxHEIGHT"),
    (["{model}", "--persons", "x"], "MIN-MAX"),
    (["{model}", "--data", "/nonexistent/root"], "dataset root not found"),
])
def test_tune_user_errors_exit_2(argv, msg, capsys):
    from conftest import DEFAULT_MODEL

    assert tune.main([a.format(model=DEFAULT_MODEL) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("uniparser-tune: error:") and msg in err and "Traceback" not in err


def test_tune_help():
    with pytest.raises(SystemExit) as e:
        tune.main(["--help"])
    assert e.value.code == 0
