from __future__ import annotations

import numpy as np
import pytest

from jobs.tooling import fp16
from jobs.tooling.common import is_ort_format
from jobs.tooling.errors import TransformError
from jobs.tooling.transforms import TRANSFORMS, get_transform, run_transform


def test_registry__holds_every_transform_of_the_issue():
    assert set(TRANSFORMS) == {
        "quantize_dynamic",
        "quantize_static",
        "fp16",
        "optimize_graph",
        "prune",
        "convert_opset",
        "to_ort",
        "svd",
        "lower_ir_version",
        "remove_noops",
        "zipmap_to_tensor",
        "replace_ml_ops",
        "fold_batchnorm",
        "make_runnable",
        "weight_only",
        "compress_weights",
        "pipeline",
    }
    assert [name for name, t in TRANSFORMS.items() if t.needs_dataset] == ["quantize_static"]
    # make_runnable takes a device profile, which only a job passes: people ask for it through optimize-for-device.
    assert [name for name, t in TRANSFORMS.items() if not t.public] == ["make_runnable"]
    assert TRANSFORMS["to_ort"].suffix == ".ort"


def test_registry__defaults_come_from_the_function_signatures():
    assert TRANSFORMS["prune"].defaults == {"sparsity": 0.5}
    assert TRANSFORMS["fp16"].defaults == {
        "keep_io_types": True,
        "keep_float32_ops": fp16.SENSITIVE_OPS,
        "keep_float32_nodes": (),
    }
    assert TRANSFORMS["quantize_static"].defaults["calibrate_method"] == "minmax"
    assert TRANSFORMS["convert_opset"].required == ["target_opset"]


def test_clean__merges_defaults_and_refuses_unknown_missing_and_invalid_parameters():
    assert TRANSFORMS["svd"].clean({"rank": 8}) == {"rank": 8, "energy": None, "min_weights": 4096}
    with pytest.raises(TransformError, match="prune has no parameter ratio; it takes sparsity"):
        TRANSFORMS["prune"].clean({"ratio": 0.5})
    with pytest.raises(TransformError, match="convert_opset needs target_opset"):
        TRANSFORMS["convert_opset"].clean({})
    with pytest.raises(TransformError, match="calibrate_method='kl' must be one of"):
        TRANSFORMS["quantize_static"].clean({"calibrate_method": "kl", "dataset": "x.npz"})


def test_get_transform__unknown_name__lists_the_known_ones():
    with pytest.raises(TransformError, match="unknown transform 'int4'; choose from quantize_dynamic"):
        get_transform("int4")


# Rewrites for models that have what they rewrite (ZipMap, ai.onnx.ml ops, no-ops, a newer IR, big MatMul weights):
# on this CNN they refuse, and each has its own tests (test_runnable.py, test_weight_only.py).
MODEL_SPECIFIC = {
    "lower_ir_version",
    "remove_noops",
    "zipmap_to_tensor",
    "replace_ml_ops",
    "fold_batchnorm",
    "make_runnable",
    "weight_only",
}


@pytest.mark.parametrize("name", sorted(set(TRANSFORMS) - MODEL_SPECIFIC))
def test_run_transform__every_transform_runs_by_name_on_the_cnn(name, cnn_path, tmp_path):
    params = {
        "convert_opset": {"target_opset": 18},
        "svd": {"rank": 4, "min_weights": 100},
        "pipeline": {"steps": [["optimize_graph", {"level": "basic"}], ["quantize_dynamic", {}]]},
    }.get(name, {})
    if name == "quantize_static":
        params = {"dataset": tmp_path / "images.npz"}
        np.savez(params["dataset"], x=np.random.default_rng(0).standard_normal((8, 1, 8, 8)).astype(np.float32))
    dst = tmp_path / f"variant{TRANSFORMS[name].suffix}"
    report = run_transform(name, cnn_path, dst, **params)
    assert report.transform == name and dst.exists()
    assert is_ort_format(dst) == (name == "to_ort")
