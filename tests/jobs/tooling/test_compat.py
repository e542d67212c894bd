"""The compatibility checks, each on plain facts and profiles, and check_device composing them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jobs.tooling import compat, live_runtime
from jobs.tooling.compat import (
    MOBILE_PACKAGE_PRECISIONS,
    DeviceRuntime,
    check_device,
    check_file_size,
    check_ir_version,
    check_memory,
    check_operators,
    check_opsets,
    check_precision,
    device_runtime,
    precision_advice,
)
from jobs.tooling.inspect import inspect_model
from jobs.tooling.reference_models import mlp

MB = 1024 * 1024
LIVE = live_runtime.major_minor(live_runtime.version())


def facts(
    *,
    ir_version: int = 8,
    opsets: dict[str, int] | None = None,
    ops: list[tuple[str, str]] | None = None,
    compute: str = "fp32",
    weight_bytes: int = 4096,
) -> dict[str, Any]:
    """The fields of ``inspect_model``'s answer the checks read (node signatures without types)."""
    opsets = opsets if opsets is not None else {"ai.onnx": 17}
    ops = ops or [("ai.onnx", "MatMul")]
    return {
        "ir_version": ir_version,
        "opset_imports": opsets,
        "operators": [{"domain": d, "op": op, "count": 1} for d, op in ops],
        "kernel_signatures": [
            {"domain": d, "op": op, "opset": opsets.get(d, 1), "inputs": [], "outputs": [], "count": 1, "node": op}
            for d, op in ops
        ],
        "precision": {"compute": compute},
        "parameters": {"bytes": weight_bytes},
    }


def table_runtime(version: str = "1.16", *, mobile: bool = False) -> DeviceRuntime:
    runtime = device_runtime({"runtime_version": version, "runtime_build": "mobile" if mobile else "full"})
    assert runtime is not None
    return runtime


# -- limits: the runtime release and its IR / opset table


def test_device_runtime__published_release__takes_its_limits_from_the_table() -> None:
    runtime = table_runtime("1.16.3")

    assert (runtime.label, runtime.live, runtime.max_ir) == ("onnxruntime 1.16", False, 9)
    assert runtime.max_opsets == {"ai.onnx": 19, "ai.onnx.ml": 3}
    assert runtime.notes == ()


def test_device_runtime__release_missing_from_the_table__uses_the_older_row_and_says_so() -> None:
    runtime = table_runtime("1.21")

    assert runtime.max_opsets == table_runtime("1.20").max_opsets
    assert runtime.notes == (
        "onnxruntime 1.21 is not in the published table; limits of the nearest older release used",
    )


def test_device_runtime__the_servers_own_release__asks_the_live_runtime() -> None:
    runtime = device_runtime({"runtime_version": LIVE})

    assert runtime is not None and runtime.live
    assert runtime.max_ir == live_runtime.max_ir_version()


def test_device_runtime__older_than_the_table__is_unknown() -> None:
    assert device_runtime({"runtime_version": "1.9"}) is None


def test_check_ir_version__newer_than_the_runtime_loads__fails_with_its_limit() -> None:
    assert check_ir_version(facts(ir_version=9), table_runtime("1.16")) == []
    assert check_ir_version(facts(ir_version=10), table_runtime("1.16")) == [
        "IR version 10 is newer than onnxruntime 1.16 loads (up to 9)"
    ]


# -- opsets


def test_check_opsets__each_too_new_stock_domain__is_a_reason_and_custom_domains_are_left_alone() -> None:
    model = facts(opsets={"ai.onnx": 21, "ai.onnx.ml": 3, "acme.vision": 99})

    assert check_opsets(model, table_runtime("1.16")) == [
        "opset 21 of ai.onnx is too new for onnxruntime 1.16 (supports up to 19)"
    ]
    assert check_opsets(facts(opsets={"ai.onnx": 19}), table_runtime("1.16")) == []


# -- operators


def test_check_operators__custom_domain__is_never_in_a_stock_build() -> None:
    model = facts(opsets={"ai.onnx": 17, "acme.vision": 1}, ops=[("ai.onnx", "MatMul"), ("acme.vision", "Warp")])

    reasons, _notes = check_operators(model, table_runtime("1.16"))

    assert reasons == ["Warp of the custom domain acme.vision: no stock onnxruntime build has it (1 node, e.g. 'Warp')"]


def test_check_operators__mobile_package__lacks_ops_outside_its_reduced_set() -> None:
    model = facts(opsets={"ai.onnx": 13}, ops=[("ai.onnx", "Conv"), ("ai.onnx", "LSTM"), ("ai.onnx", "Einsum")])

    assert check_operators(model, table_runtime("1.17", mobile=True))[0] == [
        "Einsum: not in the onnxruntime 1.17 mobile package (1 node, e.g. 'Einsum')",
        "LSTM: not in the onnxruntime 1.17 mobile package (1 node, e.g. 'LSTM')",
    ]
    assert check_operators(model, table_runtime("1.17"))[0] == []  # the full build has all three


def test_check_operators__facts_without_node_types__are_checked_per_operator_and_say_so() -> None:
    old = facts(ops=[("ai.onnx", "MatMul")])
    del old["kernel_signatures"]

    reasons, notes = check_operators(old, table_runtime("1.16"))

    assert reasons == []
    assert notes == ["input and output types not checked: these facts predate per-node checks; re-run the check"]


def test_check_operators__live_runtime__is_asked_for_its_kernels() -> None:
    model = facts(opsets={"ai.onnx": 17}, ops=[("ai.onnx", "MatMul"), ("ai.onnx", "NoSuchOp")])

    assert check_operators(model, device_runtime({"runtime_version": LIVE}))[0] == [
        f"NoSuchOp (opset 17): onnxruntime {LIVE} does not know this operator (1 node, e.g. 'NoSuchOp')"
    ]


def test_check_operators__release_with_no_recorded_registry__says_operators_were_not_checked() -> None:
    reasons, notes = check_operators(facts(ops=[("ai.onnx", "MatMul")]), table_runtime("1.12"))

    assert reasons == []
    assert notes == [
        "operators not checked against onnxruntime 1.12: no registry of it is recorded "
        "(python -m jobs.tooling.registry.record --release X.Y.Z records one)"
    ]


# -- resources


def test_check_precision__a_precision_the_runtime_executes__never_fails_and_listed_ones_are_not_advised() -> None:
    pi = {"precisions": ["fp32", "int8"], "runtime_build": "full"}

    for compute in ("fp32", "int8", "fp16"):
        assert check_precision(facts(compute=compute), pi) == []
    assert precision_advice(facts(compute="int8"), pi) == []
    assert precision_advice(facts(compute="fp16"), {"precisions": ["fp32", "fp16"]}) == []


def test_precision_advice__fp16_on_a_device_type_that_does_not_run_it_well__advises_fp32() -> None:
    pi = {"precisions": ["fp32", "int8"], "runtime_build": "full"}

    assert precision_advice(facts(compute="fp16"), pi) == [
        "advice: model computes in fp16, which runs here but is not a precision this device type runs well "
        "(fp32, int8); expect it slower than in fp32"
    ]
    assert precision_advice(facts(compute="int8"), {}) == [
        "advice: model computes in int8, which runs here but is not a precision this device type runs well "
        "(fp32); expect it slower than in fp32"
    ]


def test_check_precision__a_precision_the_runtime_cannot_execute__fails_and_is_not_advised() -> None:
    phone = {"precisions": ["fp32", "int8"], "runtime_build": "mobile"}

    assert check_precision(facts(compute="fp16"), phone) == [
        "model computes in fp16, which the mobile package cannot execute; this device type runs fp32, int8"
    ]
    assert check_precision(facts(compute="bf16"), {}) == [
        "model computes in bf16, which its onnxruntime build cannot execute; this device type runs fp32"
    ]
    assert check_precision(facts(compute="bf16"), {"precisions": ["fp32", "bf16"]}) == []
    assert precision_advice(facts(compute="fp16"), phone) == []


def test_mobile_package_precisions__match_the_packages_allowed_types() -> None:
    config = (Path(compat.__file__).parent / "data" / "ort_mobile_1.17.config").read_text()
    allowed = next(line for line in config.splitlines() if line.startswith("!globally_allowed_types;"))
    kernel_types = {"float": "fp32", "int8_t": "int8", "uint8_t": "int8"}

    assert {kernel_types[t] for t in allowed.split(";", 1)[1].split(",")} == set(MOBILE_PACKAGE_PRECISIONS)


def test_check_file_size__over_the_device_types_limit__fails_and_no_limit_passes() -> None:
    assert check_file_size(100 * MB, {"max_model_bytes": 100 * MB}) == []
    assert check_file_size(150 * MB, {"max_model_bytes": 100 * MB}) == [
        "model file is 150.0 MB, over this device type's limit of 100.0 MB"
    ]
    assert check_file_size(10**12, {}) == []


def test_check_memory__weights_twice_over_the_devices_memory__fails() -> None:
    assert check_memory(facts(weight_bytes=MB), {"memory_bytes": 2 * MB}) == []
    assert check_memory(facts(weight_bytes=2 * MB), {"memory_bytes": 3 * MB}) == [
        "needs about 4.0 MB of memory; the device has 3.0 MB"
    ]
    assert check_memory(facts(weight_bytes=10**12), {}) == []


# -- composed


def test_check_device__a_small_fp32_model__runs_on_the_servers_runtime() -> None:
    profile = {"runtime_version": LIVE, "precisions": ["fp32"], "max_model_bytes": MB, "memory_bytes": 64 * MB}

    assert check_device(inspect_model(mlp([16, 64, 10])), 30_000, profile) == (True, [])


def test_check_device__lists_every_failing_check_in_order_then_the_assumptions() -> None:
    model = facts(
        ir_version=99,
        opsets={"ai.onnx": 22, "acme.vision": 1},
        ops=[("acme.vision", "Warp")],
        compute="fp16",
        weight_bytes=3 * MB,
    )
    profile = {"runtime_version": "1.21", "precisions": ["fp32"], "max_model_bytes": MB, "memory_bytes": 4 * MB}

    compatible, reasons = check_device(model, 2 * MB, profile)

    assert not compatible
    assert [reason.split(" ", 2)[:2] for reason in reasons] == [
        ["IR", "version"],
        ["opset", "22"],
        ["Warp", "of"],
        ["model", "file"],
        ["needs", "about"],
        ["advice:", "model"],
        ["onnxruntime", "1.21"],
        ["operators", "not"],
    ]


def test_check_device__fp16_on_a_board_that_prefers_fp32__is_compatible_with_advice() -> None:
    raspberry_pi = {"runtime_version": "1.16", "runtime_build": "full", "precisions": ["fp32", "int8"]}

    compatible, reasons = check_device(facts(compute="fp16"), 30_000, raspberry_pi)

    assert compatible
    assert [reason.split(",")[0] for reason in reasons] == ["advice: model computes in fp16"]


def test_check_device__fp16_on_the_mobile_package__is_incompatible() -> None:
    phone = {"runtime_version": "1.17", "runtime_build": "mobile", "precisions": ["fp32", "int8"]}

    compatible, reasons = check_device(facts(compute="fp16", opsets={"ai.onnx": 13}), 30_000, phone)

    assert not compatible
    assert reasons == [
        "model computes in fp16, which the mobile package cannot execute; this device type runs fp32, int8"
    ]


@pytest.mark.parametrize("version", ["1.9", "0.5.1"])
def test_check_device__runtime_older_than_the_table__is_incompatible_with_one_reason(version: str) -> None:
    assert check_device(facts(), 1, {"runtime_version": version}) == (
        False,
        [
            f"onnxruntime {'.'.join(version.split('.')[:2])} is older than any release in the published compatibility table"
        ],
    )
