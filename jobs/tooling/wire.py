"""Reading the protobuf wire format field by field, without decoding messages.

Python's protobuf runtime can only parse a whole message: a 500 MB ONNX file becomes 500 MB of bytes plus
500 MB of parsed tensors before anything can be looked at. The uploads we sniff need the opposite: walk the
field structure, descend into the few messages that matter and skip every payload by its length. No library
offers that, hence this small reader. It works on any buffer (an ``mmap`` of the file in practice), so the
payloads it skips are never read.
"""

from __future__ import annotations

from collections.abc import Iterator

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5
_WIRE_NAMES = {VARINT: "varint", FIXED64: "fixed64", LEN: "length-delimited", FIXED32: "fixed32"}
_HIGH_BIT_BYTES = bytes(range(0x80, 0x100))
_COUNT_CHUNK = 8 * 1024 * 1024


class WireError(ValueError):
    """The bytes are not well-formed protobuf; ``offset`` is where reading stopped."""

    def __init__(self, offset: int, reason: str):
        self.offset = offset
        self.reason = reason
        super().__init__(f"{reason} at byte {offset}")


def wire_name(wire_type: int) -> str:
    return _WIRE_NAMES.get(wire_type, f"wire type {wire_type}")


def read_varint(buf, pos: int, end: int) -> tuple[int, int]:
    """The unsigned varint at ``pos`` and the position after it."""
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise WireError(pos, "cut off inside a number")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise WireError(pos, "a number longer than 10 bytes")


class FieldBudget:
    """How many more fields a walk may visit: bounds its time whatever a file repeats."""

    def __init__(self, limit: int):
        self.limit = limit
        self.remaining = limit


class BudgetExhausted(ValueError):
    pass


def iter_fields(
    buf, start: int, end: int, budget: FieldBudget | None = None
) -> Iterator[tuple[int, int, int | tuple[int, int] | None]]:
    """``(field number, wire type, value)`` for each field of the message in ``buf[start:end]``.

    The value is the integer of a varint, the ``(start, end)`` span of a length-delimited payload, and None for
    fixed-width numbers. Groups (wire types 3 and 4) are refused: proto3 messages such as ONNX's never use them.
    Single-byte keys and lengths, nearly all of them, are read inline: this loop is the walk's whole cost.
    """
    pos = start
    while pos < end:
        if budget is not None:
            budget.remaining -= 1
            if budget.remaining < 0:
                raise BudgetExhausted(f"more than {budget.limit:,} protobuf fields")
        key = buf[pos]
        if key < 0x80:
            pos += 1
        else:
            key, pos = read_varint(buf, pos, end)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireError(pos, "field number 0")
        if wire_type == LEN:
            if pos < end and buf[pos] < 0x80:
                length = buf[pos]
                pos += 1
            else:
                length, pos = read_varint(buf, pos, end)
            if length > end - pos:
                raise WireError(pos, f"a field of {length} bytes runs past the end of its message")
            yield number, wire_type, (pos, pos + length)
            pos += length
        elif wire_type == VARINT:
            value, pos = read_varint(buf, pos, end)
            yield number, wire_type, value
        elif wire_type in (FIXED64, FIXED32):
            pos += 8 if wire_type == FIXED64 else 4
            if pos > end:
                raise WireError(end, "cut off inside a fixed-width number")
            yield number, wire_type, None
        else:
            raise WireError(pos, f"unsupported {wire_name(wire_type)}")


def iter_packed_varints(buf, start: int, end: int) -> Iterator[int]:
    pos = start
    while pos < end:
        value, pos = read_varint(buf, pos, end)
        yield value


def count_packed_varints(buf, start: int, end: int) -> int:
    """How many varints a packed field holds: one per byte without the continuation bit, counted in C."""
    count = 0
    for chunk_start in range(start, end, _COUNT_CHUNK):
        chunk = buf[chunk_start : min(end, chunk_start + _COUNT_CHUNK)]
        count += len(chunk.translate(None, _HIGH_BIT_BYTES))
    if end > start and buf[end - 1] >= 0x80:
        raise WireError(end, "cut off inside a packed number")
    return count


def as_signed64(value: int) -> int:
    """An int64 field's value: negative numbers travel as 10-byte two's complement varints."""
    return value - (1 << 64) if value >= 1 << 63 else value
