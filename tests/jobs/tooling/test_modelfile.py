"""Model files: the structural outline refuses hostile files before anything parses them; the full load checks."""

from __future__ import annotations

import time

import onnx
import pytest

from jobs.tooling import modelfile
from jobs.tooling.inputs import graph_inputs
from jobs.tooling.modelfile import ModelFileError, check_upload, load_model, outline_model
from tests.conftest import make_mlp
from tests.security import hostile_files


def write(tmp_path, payload: bytes, name: str = "model.onnx"):
    path = tmp_path / name
    path.write_bytes(payload)
    return path


def refusal(path, check=outline_model) -> str:
    with pytest.raises(ModelFileError) as raised:
        check(path)
    return str(raised.value)


def test_outline__valid_model__counts_its_structure_and_keeps_its_signature(tmp_path):
    outline = outline_model(write(tmp_path, make_mlp().SerializeToString()))
    assert (outline.nodes, outline.tensors, outline.subgraphs) == (5, 4, 0)
    assert [spec.as_dict() for spec in graph_inputs(outline.signature)] == [
        {"name": "x", "dtype": "float32", "shape": ["N", 8]}
    ]


def test_outline__subgraphs_within_the_depth__are_walked(tmp_path):
    outline = outline_model(write(tmp_path, hostile_files.nested_subgraphs(3)))
    assert outline.subgraphs == 6 and outline.nodes == 7  # three Ifs, each with two branches of one node
    load_model(tmp_path / "model.onnx")  # and the checker agrees it is a model


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "The file is empty"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "not a readable ONNX model"),
        (make_mlp().SerializeToString()[:300], "not a readable ONNX model"),
        (hostile_files.random_protobuf(), "not a readable ONNX model"),
        (hostile_files.huge_declared_tensor(), "declares shape [1048576, 1048576] (1,099,511,627,776 values)"),
        (hostile_files.raw_data_size_mismatch(), "stores 100 bytes, where 128 are needed"),
        (hostile_files.nested_subgraphs(40), f"nests subgraphs more than {modelfile.MAX_SUBGRAPH_DEPTH} deep"),
        (hostile_files.many_nodes(100_000), f"more than {modelfile.MAX_NODES:,} nodes"),
        (hostile_files.external_data("../../etc/passwd"), "points outside the model's folder"),
        (hostile_files.external_data("weights.bin"), "Upload a self-contained model"),
    ],
    ids=[
        "empty",
        "not-protobuf",
        "truncated",
        "other-protobuf",
        "huge-declared-tensor",
        "raw-size-mismatch",
        "nested-subgraphs",
        "100k-nodes",
        "external-traversal",
        "external-data",
    ],
)
def test_outline__hostile_file__is_refused_with_the_reason_in_bounded_time(tmp_path, payload, message):
    path = write(tmp_path, payload)
    started = time.perf_counter()
    assert message in refusal(path)
    assert time.perf_counter() - started < 5
    assert message in refusal(path, load_model)  # the job's full load refuses the same way, before parsing


def test_outline__fields_repeated_without_end__are_refused_at_the_field_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(modelfile, "MAX_FIELDS", 1000)
    path = write(tmp_path, hostile_files.many_nodes(2000))
    assert "more than 1,000 protobuf fields" in refusal(path)


def test_outline__tensor_declaring_more_values_than_a_float_holds__is_refused_with_the_count(tmp_path):
    tensor = onnx.TensorProto(name="w", data_type=onnx.TensorProto.FLOAT, dims=[1 << 62] * 64, raw_data=b"\0" * 4)
    path = write(tmp_path, hostile_files.model_with_initializer(tensor))
    assert "declares shape [4611686018427387904, " in refusal(path)


def test_check_upload__small_file__runs_the_onnx_checker(tmp_path):
    broken = make_mlp()
    broken.graph.node[0].input[1] = "no_such_tensor"
    assert "fails the ONNX checker" in refusal(write(tmp_path, broken.SerializeToString()), check_upload)


def test_check_upload__file_above_the_full_check_size__is_outlined_only(tmp_path, monkeypatch):
    broken = make_mlp()
    broken.graph.node[0].input[1] = "no_such_tensor"
    path = write(tmp_path, broken.SerializeToString())
    monkeypatch.setattr(modelfile, "FULL_CHECK_AT_UPLOAD_BYTES", path.stat().st_size - 1)
    assert check_upload(path).nodes == 5  # structurally fine; the check job's load_model refuses it
    assert "fails the ONNX checker" in refusal(path, load_model)


def test_load_model__valid_model__parses_and_passes_the_checker(tmp_path):
    model = load_model(write(tmp_path, make_mlp().SerializeToString()))
    assert isinstance(model, onnx.ModelProto) and len(model.graph.node) == 5
