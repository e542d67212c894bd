from __future__ import annotations

import pytest

from jobs.tooling import runtimes
from jobs.tooling.runtimes import (
    mobile_operator_set,
    mobile_package,
    mobile_supports,
    parse_operator_config,
    published_runtimes,
    runtime_limits,
)


def test_table_covers_1_10_onwards_with_all_keys() -> None:
    table = published_runtimes()
    assert {"1.10", "1.16", "1.17"} <= table.keys()
    assert all(entry.keys() == {"ai.onnx", "ai.onnx.ml", "ir_version"} for entry in table.values())
    assert table["1.16"] == {"ai.onnx": 19, "ai.onnx.ml": 3, "ir_version": 9}


def test_patch_release_maps_to_major_minor() -> None:
    limits = runtime_limits("1.17.3")
    assert limits is not None
    assert limits["ai.onnx"] == 20 and limits["runtime"] == "1.17" and limits["exact"] is True
    assert runtime_limits("1.16")["ai.onnx"] == 19


def test_newer_than_table_uses_newest_row_inexact() -> None:
    newest = max(published_runtimes(), key=lambda v: tuple(map(int, v.split("."))))
    limits = runtime_limits("9.0.1")
    assert limits == {**published_runtimes()[newest], "runtime": newest, "exact": False}


def test_between_rows_uses_lower_row(monkeypatch: pytest.MonkeyPatch) -> None:
    table = {"1.10": {"ai.onnx": 15}, "1.12": {"ai.onnx": 17}}
    monkeypatch.setattr(runtimes, "published_runtimes", lambda: table)
    assert runtime_limits("1.11.1") == {"ai.onnx": 15, "runtime": "1.10", "exact": False}


def test_older_than_table_is_none() -> None:
    assert runtime_limits("1.9.0") is None
    assert runtime_limits("0.5") is None


def test_conv_is_in_mobile_set_at_its_opsets() -> None:
    ops = mobile_operator_set()
    assert sorted(o for o, names in ops["ai.onnx"].items() if "Conv" in names) == [12, 13, 14, 15]
    for opset in (12, 13, 15):
        assert mobile_supports(ops, "ai.onnx", "Conv", opset)
        assert mobile_supports(ops, "", "Conv", opset)
    assert mobile_supports(ops, "com.microsoft", "FusedConv", 1)


def test_ops_absent_from_mobile_package() -> None:
    ops = mobile_operator_set()
    assert not mobile_supports(ops, "ai.onnx", "LSTM", 13)
    assert not mobile_supports(ops, "ai.onnx", "Einsum", 13)
    assert not mobile_supports(ops, "ai.onnx.ml", "TreeEnsembleClassifier", 3)
    # Conv-11 is the kernel opsets 12..15 resolve to, so a model at opset 11 or 17 uses it too.
    assert mobile_supports(ops, "ai.onnx", "Conv", 11)
    assert mobile_supports(ops, "ai.onnx", "Conv", 17)
    assert not mobile_supports(ops, "ai.onnx", "Where", 16)  # Where-16 is newer than the package


def test_op_is_supported_only_when_the_model_resolves_it_to_a_listed_kernel_version() -> None:
    ops = parse_operator_config("ai.onnx;1;LayerNormalization\n;12,13;Add\nai.onnx;13;Relu  # trailing comment\n").ops
    assert ops == {"ai.onnx": {1: {"LayerNormalization"}, 12: {"Add"}, 13: {"Add", "Relu"}}}
    assert mobile_supports(ops, "ai.onnx", "Add", 13)
    assert not mobile_supports(ops, "ai.onnx", "Add", 17)  # Add-14 is not among the listed kernels
    assert not mobile_supports(ops, "ai.onnx", "Relu", 12)


def test_parser_reads_the_type_reduction_global_and_per_operator() -> None:
    config = parse_operator_config(
        '# c\n!globally_allowed_types;float,int8_t,uint8_t\n\nai.onnx;13;Add{"inputs": {"0": ["float", "int64_t"]}},Relu\n'
    )

    assert config.ops == {"ai.onnx": {13: {"Add", "Relu"}}}
    assert config.global_types == {"float", "int8", "uint8"}
    assert config.op_types == {("ai.onnx", "Add"): {"inputs": {0: {"float", "int64"}}, "outputs": {}}}


def test_parser_refuses_an_unreadable_type_annotation() -> None:
    with pytest.raises(ValueError, match="unreadable type annotation for Add"):
        parse_operator_config('ai.onnx;13;Add{"inputs": {0: float}}')


def test_the_mobile_packages_config_keeps_its_type_reduction() -> None:
    assert mobile_package().global_types == {"float", "int8", "uint8"}
