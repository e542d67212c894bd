"""Small models built in ONNX with known, seeded weights: for tests, benchmarks and demos (no download)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def make_model(nodes, inputs, outputs, initializers=(), *, opset: int = OPSET, name: str = "reference"):
    graph = helper.make_graph(nodes, name, inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8  # loadable by older onnxruntime builds too
    onnx.checker.check_model(model)
    return model


def float_input(name: str, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def mlp_weights(sizes, seed: int = 0, low_rank: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    """Scaled so activations stay near unit size. ``low_rank``: low-rank plus noise, as trained layers tend to be
    (a random matrix has nothing for SVD to keep)."""
    rng = np.random.default_rng(seed)
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        if low_rank:
            rank = max(8, min(fan_in, fan_out) // 16)
            weights = rng.standard_normal((fan_in, rank)) @ rng.standard_normal((rank, fan_out)) / np.sqrt(rank)
            weights = weights + 0.1 * rng.standard_normal((fan_in, fan_out))
        else:
            weights = rng.standard_normal((fan_in, fan_out))
        layers.append(
            ((weights / np.sqrt(fan_in)).astype(np.float32), (rng.standard_normal(fan_out) * 0.1).astype(np.float32))
        )
    return layers


def mlp(
    sizes, *, batch: int | str = "N", constants: bool = False, seed: int = 0, opset: int = OPSET, low_rank: bool = False
) -> onnx.ModelProto:
    """x -> (MatMul, Add, Relu)* -> MatMul, Add -> y; weights as initializers or as Constant nodes."""
    nodes, initializers, previous = [], [], "x"
    for layer, (weights, bias) in enumerate(mlp_weights(sizes, seed, low_rank)):
        tensors = [numpy_helper.from_array(weights, f"w{layer}"), numpy_helper.from_array(bias, f"b{layer}")]
        if constants:
            nodes += [helper.make_node("Constant", [], [t.name], value=t) for t in tensors]
        else:
            initializers += tensors
        last = layer == len(sizes) - 2
        nodes += [
            helper.make_node("MatMul", [previous, f"w{layer}"], [f"m{layer}"]),
            helper.make_node("Add", [f"m{layer}", f"b{layer}"], ["y" if last else f"h{layer}"]),
        ]
        if not last:
            nodes.append(helper.make_node("Relu", [f"h{layer}"], [f"a{layer}"]))
            previous = f"a{layer}"
    return make_model(
        nodes,
        [float_input("x", [batch, sizes[0]])],
        [float_input("y", [batch, sizes[-1]])],
        initializers,
        opset=opset,
        name="mlp",
    )


def cnn(seed: int = 2, opset: int = OPSET) -> onnx.ModelProto:
    """28x28 input, two conv blocks, two dense layers (10 classes)."""
    rng = np.random.default_rng(seed)

    def weights(name: str, shape: tuple[int, ...], fan_in: int) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32), name)

    initializers = [
        weights("c1", (16, 1, 3, 3), 9),
        weights("c2", (32, 16, 3, 3), 144),
        weights("fc1", (32 * 7 * 7, 64), 32 * 7 * 7),
        weights("fc2", (64, 10), 64),
        numpy_helper.from_array(np.zeros(64, np.float32), "fc1_bias"),
        numpy_helper.from_array(np.zeros(10, np.float32), "fc2_bias"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "c1"], ["h1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "c2"], ["h2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h2"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p2"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc1", "fc1_bias"], ["d1"]),
        helper.make_node("Relu", ["d1"], ["a1"]),
        helper.make_node("Gemm", ["a1", "fc2", "fc2_bias"], ["y"]),
    ]
    return make_model(
        nodes,
        [float_input("x", ["N", 1, 28, 28])],
        [float_input("y", ["N", 10])],
        initializers,
        opset=opset,
        name="cnn",
    )
