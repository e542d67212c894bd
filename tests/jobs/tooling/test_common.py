from __future__ import annotations

import onnx
import pytest

from jobs.tooling.common import (
    Param,
    check_params,
    constants_to_initializers,
    is_ort_format,
    is_quantized,
    load_model,
    write_atomically,
)
from jobs.tooling.errors import TransformError
from jobs.tooling.modelfile import iter_graphs


def test_write_atomically__success__renames_the_temp_file_to_dst(tmp_path):
    dst = tmp_path / "variant.onnx"
    with write_atomically(dst) as tmp:
        assert tmp.parent == tmp_path and tmp != dst
        tmp.write_bytes(b"model")
    assert dst.read_bytes() == b"model"
    assert list(tmp_path.iterdir()) == [dst]


def test_write_atomically__error_halfway__leaves_no_file_and_keeps_an_older_dst(tmp_path):
    dst = tmp_path / "variant.onnx"
    dst.write_bytes(b"older")
    with pytest.raises(RuntimeError), write_atomically(dst) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert dst.read_bytes() == b"older"
    assert list(tmp_path.iterdir()) == [dst]


def test_write_atomically__nothing_written__is_an_error_and_leaves_nothing(tmp_path):
    with pytest.raises(TransformError, match="wrote nothing"), write_atomically(tmp_path / "v.onnx"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_load_model__garbage_file__says_it_is_not_an_onnx_model(tmp_path):
    path = tmp_path / "garbage.onnx"
    path.write_bytes(b"\x00\xffnot a model" * 10)
    with pytest.raises(TransformError, match="not a readable ONNX model"):
        load_model(path)


def test_is_ort_format__onnx_file__is_false(mlp_path):
    assert not is_ort_format(mlp_path)


def test_constants_to_initializers__moves_constants_in_every_graph(constant_weights_path, if_subgraph_path):
    model = onnx.load(str(constant_weights_path))
    assert constants_to_initializers(model) == 6
    assert not [n for n in model.graph.node if n.op_type == "Constant"]
    assert {t.name for t in model.graph.initializer} >= {"w0", "w1", "w2"}

    model = onnx.load(str(if_subgraph_path))
    assert constants_to_initializers(model) == 3  # "zero" in the main graph, one weight per branch
    assert all(n.op_type != "Constant" for g in iter_graphs(model.graph) for n in g.node)


def test_is_quantized__tells_float_from_quantized_models(mlp_path, quantized_path):
    assert not is_quantized(onnx.load(str(mlp_path)))
    assert is_quantized(onnx.load(str(quantized_path)))


@pytest.mark.parametrize(
    ("value", "message"),
    [("0.5", "must be float"), (True, "must be float"), (1.5, "at most 1"), (-1, "at least 0")],
)
def test_check_params__bad_values__are_refused_with_the_rule(value, message):
    with pytest.raises(TransformError, match=message):
        check_params({"sparsity": Param(float, minimum=0.0, maximum=1.0)}, {"sparsity": value})


def test_check_params__choices_and_optional_none():
    constraints = {"level": Param(str, choices=("basic", "extended")), "rank": Param(int, optional=True)}
    check_params(constraints, {"level": "basic", "rank": None})
    with pytest.raises(TransformError, match="one of 'basic', 'extended'"):
        check_params(constraints, {"level": "all"})
