"""Hostile model and dataset files, built in the test: small on disk, big once decompressed or declared.

Each builder writes the bytes directly (zip records, protobuf fields) where the honest tools would have to
allocate what the file claims: a 2 GiB archive is built from a 1 MiB block of compressed zeros repeated.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import make_mlp

GIB = 1 << 30
MIB = 1 << 20


# --- protobuf ------------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def model_with_initializer(tensor: onnx.TensorProto) -> bytes:
    """x [N, 8] -> MatMul with ``tensor`` as the weight."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", tensor.name], ["y"])],
        "crafted",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [tensor],
    )
    return _model(graph).SerializeToString()


def huge_declared_tensor() -> bytes:
    """A weight declaring 2^40 floats (4 TiB) and holding four bytes."""
    tensor = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1 << 20, 1 << 20], raw_data=b"\0" * 4)
    return model_with_initializer(tensor)


def raw_data_size_mismatch() -> bytes:
    """A [8, 4] float weight (128 bytes) whose raw data holds 100."""
    tensor = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[8, 4], raw_data=b"\1" * 100)
    return model_with_initializer(tensor)


def external_data(location: str) -> bytes:
    model = make_mlp()
    weight = model.graph.initializer[0]
    weight.ClearField("raw_data")
    weight.ClearField("float_data")
    weight.data_location = TensorProto.EXTERNAL
    weight.external_data.add(key="location", value=location)
    return model.SerializeToString()


def nested_subgraphs(depth: int) -> bytes:
    """If nodes nested ``depth`` deep, spliced as bytes: the onnx helpers stop at protobuf's own depth limit."""

    def value_info(name: str) -> bytes:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, [1]).SerializeToString()

    def graph_attribute(name: str, graph: bytes) -> bytes:  # AttributeProto: name 1, g 6, type 20 (GRAPH = 5)
        return _field(1, name.encode()) + _field(6, graph) + _varint(20 << 3) + _varint(5)

    leaf = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "leaf",
        [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    ).SerializeToString()
    graph = leaf
    for _ in range(depth):  # NodeProto: input 1, output 2, op_type 4, attribute 5; GraphProto: node 1, output 12
        node = (
            _field(1, b"cond")
            + _field(2, b"y")
            + _field(4, b"If")
            + _field(5, graph_attribute("then_branch", graph))
            + _field(5, graph_attribute("else_branch", leaf))
        )
        graph = _field(1, node) + _field(2, b"g") + _field(12, value_info("y"))
    top = _model(
        helper.make_graph(
            [],
            "top",
            [
                helper.make_tensor_value_info("x", TensorProto.FLOAT, [1]),
                helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
            ],
            [],
        )
    )
    top.ClearField("graph")
    main = graph + b"".join(
        _field(11, vi.SerializeToString())
        for vi in (
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1]),
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
        )
    )
    return top.SerializeToString() + _field(7, main)


def many_nodes(count: int) -> bytes:
    """``count`` Identity nodes, spliced in as repeated fields (building 100k NodeProtos would take seconds)."""
    model = _model(
        helper.make_graph(
            [],
            "many",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        )
    )
    node = _field(1, helper.make_node("Identity", ["x"], ["x"]).SerializeToString())  # GraphProto.node = 1
    graph = model.graph.SerializeToString() + node * count
    model.ClearField("graph")
    return model.SerializeToString() + _field(7, graph)  # ModelProto.graph = 7


def random_protobuf() -> bytes:
    """Well-formed protobuf that is not a model: a serialized tensor."""
    return numpy_helper.from_array(np.arange(64, dtype=np.int64), "not-a-model").SerializeToString()


def big_declared_input(side: int = 8192) -> bytes:
    """A model of a few dozen bytes whose only input is [side, side] floats."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [side, side])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [side, side])],
    )
    return _model(graph).SerializeToString()


def valid_model_of(megabytes: int) -> bytes:
    """A valid model whose weight is ``megabytes`` MiB of float32."""
    rows = megabytes * MIB // (4 * 256)
    weight = numpy_helper.from_array(np.full((rows, 256), 0.5, np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", rows])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 256])],
        [weight],
    )
    return _model(graph).SerializeToString()


# --- NPZ -----------------------------------------------------------------------------------------


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _npy_header(shape: tuple[int, ...], dtype: str = "<f4") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def _crc32_after_zeros(crc: int, count: int) -> int:
    """``zlib.crc32(bytes(count), crc)`` without running over ``count`` bytes.

    A CRC step over a block of zeros is an affine map on 32 bits (GF(2)): sample it on 33 values once, then
    compose it by squaring. zlib's crc32_combine does this in C but Python's zlib does not expose it.
    """
    block = bytes(MIB)
    constant = zlib.crc32(block, 0)
    columns = [zlib.crc32(block, 1 << bit) ^ constant for bit in range(32)]

    def apply(step, value):
        cols, const = step
        for bit in range(32):
            if value >> bit & 1:
                const ^= cols[bit]
        return const

    def compose(outer, inner):  # outer after inner
        return [apply(outer, col) ^ outer[1] for col in inner[0]], apply(outer, inner[1])

    step = (columns, constant)
    blocks, rest = divmod(count, MIB)
    while blocks:
        if blocks & 1:
            crc = apply(step, crc)
        step = compose(step, step)
        blocks >>= 1
    return zlib.crc32(bytes(rest), crc)


def _zip_one_member(name: str, data_crc: int, data_size: int, deflated: bytes) -> bytes:
    """A zip archive of one deflated member, written record by record (zipfile cannot take compressed bytes)."""
    name_bytes = name.encode()
    local = (
        struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0, data_crc, len(deflated), data_size, len(name_bytes), 0)
        + name_bytes
    )
    central = (
        struct.pack(
            "<4s6H3L5H2L",
            b"PK\x01\x02",
            20,
            20,
            0,
            8,
            0,
            0,
            data_crc,
            len(deflated),
            data_size,
            len(name_bytes),
            0,
            0,
            0,
            0,
            0,
            0,
        )
        + name_bytes
    )
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(local) + len(deflated), 0)
    return local + deflated + central + end


def npz_bomb(unpacked: int = 2 * GIB) -> bytes:
    """One float32 array of zeros that unpacks to ``unpacked`` bytes (2 GiB: a 2 MB file)."""
    values = (unpacked - 128) // 4  # a version 1.0 header of this shape takes 128 bytes
    header = _npy_header((values,))
    zeros = values * 4
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = compressor.compress(header) + compressor.flush(zlib.Z_FULL_FLUSH)
    # After a full flush the compressor keeps no history, so every MiB of zeros compresses to the same bytes.
    block = compressor.compress(bytes(MIB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    blocks, rest = divmod(zeros, MIB)
    tail = compressor.compress(bytes(rest)) + compressor.flush(zlib.Z_FINISH)
    crc = _crc32_after_zeros(zlib.crc32(header), zeros)
    return _zip_one_member("x.npy", crc, len(header) + zeros, head + block * blocks + tail)


def npz_declaring(shape: tuple[int, ...], data: bytes = b"\0" * 16) -> bytes:
    """An array whose header declares ``shape`` of float32 while the archive holds ``data``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.npy", _npy_header(shape) + data)
    return buffer.getvalue()


def npz_with_entries(count: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for index in range(count):
            archive.writestr(f"a{index}.npy", b"")
    return buffer.getvalue()


def npz_pickled() -> bytes:
    return npz_bytes(x=np.array([{"__reduce__": "os.system"}] * 4, dtype=object))


# --- CSV -----------------------------------------------------------------------------------------


def csv_with_columns(count: int) -> bytes:
    """A header of ``count`` one-letter columns and one data row: 2 bytes a column."""
    return b",".join([b"a"] * count) + b"\n" + b",".join([b"1"] * count) + b"\n"
