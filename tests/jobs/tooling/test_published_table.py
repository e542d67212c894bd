from __future__ import annotations

import json

import pytest

from jobs.tooling.registry import published_table
from jobs.tooling.registry.published_table import clamp_to_release, parse_kernel_table
from jobs.tooling.registry.record import DATA_DIR, OPEN_END

# The shape OperatorKernels.md has: a provider's section, domain rows, continuation rows, "| |" spacers.
TABLE = """## Operators implemented by CPUExecutionProvider

| Op Name | Parameters | OpSet Version | Types Supported |
|---------|------------|---------------|-----------------|
|**Operator Domain:** *ai.onnx*||||
|Add|*in* A:**T**<br> *in* B:**T**<br> *out* C:**T**|14+|**T** = tensor(int8)|
| |
| |


<a name="cudaexecutionprovider"/>

## Operators implemented by CUDAExecutionProvider

| Op Name | Parameters | OpSet Version | Types Supported |
|---------|------------|---------------|-----------------|
|**Operator Domain:** *ai.onnx*||||
|Cast|*in* input:**T1**<br> *out* output:**T2**|23+|**T1** = tensor(float), tensor(float16)<br/> **T2** = tensor(bool)|
|||13|**T1** = tensor(float16), tensor(float)<br/> **T2** = tensor(bool), tensor(int64)|
|||[6, 12]|**T1** = tensor(float)<br/> **T2** = tensor(bool)|
| |
| |
|**Operator Domain:** *com.microsoft*||||
|SequenceBox|*in* input_sequence:**S**<br> *out* length:**I**|1+|**I** = tensor(int64)<br/> **S** = seq(tensor(float)), seq(tensor(int64))|
| |
| |


<a name="dmlexecutionprovider"/>

## Operators implemented by DmlExecutionProvider

| Op Name | Parameters | OpSet Version | Types Supported |
|---------|------------|---------------|-----------------|
|**Operator Domain:** *ai.onnx*||||
|Abs|*in* X:**T**<br> *out* Y:**T**|13+|**T** = tensor(float)|
"""

CUDA_1_18 = DATA_DIR / "onnxruntime-1.18-cuda-published.json"


def test_parse_kernel_table__cuda_section__gives_ranges_and_short_types_per_domain_and_nothing_else():
    assert parse_kernel_table(TABLE, "CUDAExecutionProvider") == {
        "ai.onnx:Cast": [
            [6, 12, {"T1": ["float"], "T2": ["bool"]}],
            [13, 13, {"T1": ["float", "float16"], "T2": ["bool", "int64"]}],
            [23, OPEN_END, {"T1": ["float", "float16"], "T2": ["bool"]}],
        ],
        "com.microsoft:SequenceBox": [[1, OPEN_END, {"I": ["int64"], "S": ["seq(float)", "seq(int64)"]}]],
    }


def test_parse_kernel_table__provider_not_in_the_table__is_refused():
    with pytest.raises(ValueError, match="Operators implemented by ROCMExecutionProvider"):
        parse_kernel_table(TABLE, "ROCMExecutionProvider")


def test_parse_kernel_table__unreadable_version__is_refused_rather_than_guessed():
    broken = TABLE.replace("|||13|", "|||13-14|")
    with pytest.raises(ValueError, match="13-14"):
        parse_kernel_table(broken, "CUDAExecutionProvider")


def test_clamp_to_release__drops_later_ranges_ops_left_empty_and_unnamed_domains():
    kernels = {
        "ai.onnx:Cast": [[6, 12, {"T1": ["float"]}], [13, 13, {"T1": ["float"]}], [23, OPEN_END, {"T1": ["float"]}]],
        "ai.onnx:RMSNormalization": [[23, OPEN_END, {"T": ["float"]}]],
        "com.microsoft:Gelu": [[1, OPEN_END, {"T": ["float"]}]],
        "com.ms.internal.nhwc:Conv": [[11, 21, {"T": ["float"]}]],
    }
    assert clamp_to_release(kernels, {"ai.onnx": 21, "com.microsoft": 1}) == {
        "ai.onnx:Cast": [[6, 12, {"T1": ["float"]}], [13, 13, {"T1": ["float"]}]],
        "com.microsoft:Gelu": [[1, OPEN_END, {"T": ["float"]}]],
    }


def test_main__writes_a_data_file_the_loader_reads(tmp_path, capsys):
    markdown = tmp_path / "OperatorKernels.md"
    markdown.write_text(TABLE, encoding="utf-8")
    out = tmp_path / "onnxruntime-1.18-cuda-published.json"
    published_table.main(
        [
            "--markdown", str(markdown),
            "--provider", "CUDAExecutionProvider",
            "--release", "1.18",
            "--max-opsets", "ai.onnx=21,ai.onnx.ml=4,com.microsoft=1",
            "--source", "a test table",
            "--out", str(out),
        ]
    )  # fmt: skip
    data = json.loads(out.read_text(encoding="utf-8"))
    assert {key: value for key, value in data.items() if key != "kernels"} == {
        "format": 1,
        "runtime": "onnxruntime",
        "release": "1.18",
        "provider": "CUDAExecutionProvider",
        "exact": False,
        "source": "a test table",
    }
    assert data["kernels"]["ai.onnx:Cast"] == [
        [6, 12, {"T1": ["float"], "T2": ["bool"]}],
        [13, 13, {"T1": ["float", "float16"], "T2": ["bool", "int64"]}],
    ]
    assert "2 ops, 3 ranges kept" in capsys.readouterr().out


# --- the committed CUDA data of onnxruntime 1.18 ----------------------------------------------------------------


@pytest.fixture(scope="module")
def cuda_1_18() -> dict:
    return json.loads(CUDA_1_18.read_text(encoding="utf-8"))


def test_cuda_1_18__is_marked_as_a_published_table_of_a_later_release(cuda_1_18):
    assert cuda_1_18["provider"] == "CUDAExecutionProvider"
    assert cuda_1_18["release"] == "1.18"
    assert cuda_1_18["exact"] is False
    assert "docs/OperatorKernels.md" in cuda_1_18["source"] and "commit" in cuda_1_18["source"]


def test_cuda_1_18__has_float16_conv_matmul_and_add(cuda_1_18):
    kernels = cuda_1_18["kernels"]
    conv = {(start, end): types["T"] for start, end, types in kernels["ai.onnx:Conv"]}
    assert set(conv) == {(1, 10), (11, 21)}
    assert all("float16" in types for types in conv.values())
    assert any(start <= 13 <= end and "float16" in types["T"] for start, end, types in kernels["ai.onnx:MatMul"])
    assert any(start <= 14 <= end and "int8" in types["T"] for start, end, types in kernels["ai.onnx:Add"])
    assert "com.microsoft:MatMulNBits" in kernels


def test_cuda_1_18__has_no_string_ml_or_later_opset_kernels(cuda_1_18):
    kernels = cuda_1_18["kernels"]
    assert "ai.onnx:StringNormalizer" not in kernels
    assert "ai.onnx:Unique" not in kernels
    assert not [key for key in kernels if key.startswith("ai.onnx.ml:")]
    assert "ai.onnx:RMSNormalization" not in kernels  # opset 23, after 1.18
    assert {key.split(":")[0] for key in kernels} == {"ai.onnx", "com.microsoft"}
    assert all(start <= 21 for ranges in kernels.values() for start, _end, _types in ranges)
