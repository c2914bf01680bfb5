"""uniparser-export given a file that is already a deployable model: one line saying so, exit code 2."""
import pytest

onnx = pytest.importorskip("onnx")


def test_export_cli_on_an_onnx_file(tmp_path, capsys):
    from onnx import TensorProto, helper

    from uniparser_sdk.cli.export import main

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    path = tmp_path / "model.onnx"
    onnx.save(helper.make_model(graph), str(path))
    rc = main([str(path), "-o", str(tmp_path / "out.onnx")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "already an ONNX model" in err and "uniparser-predict" in err and ".pth" in err
    assert "weights_only" not in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out.onnx").exists()
    (tmp_path / "m.engine").write_bytes(b"\x00" * 16)
    rc = main([str(tmp_path / "m.engine")])
    assert rc == 2 and "already a TensorRT engine" in capsys.readouterr().err
