"""JSON bodies with a bound on nesting depth, for every JSON endpoint (developer API and device API alike).

Python's json parser recurses once per level: a 10 kB body of 5,000 nested brackets raises RecursionError,
which DRF's JSONParser does not catch (a 500), and a body just under the interpreter's limit parses but then
breaks whatever walks it next (serializers, JSONField, the renderer). No body we take nests beyond a few
levels, so anything deeper than MAX_JSON_DEPTH is refused before it is parsed. Neither json nor DRF offers
such a bound, hence the scan below.
"""

from __future__ import annotations

import json
import re
from array import array
from itertools import accumulate
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_JSON_DEPTH = 64

_ESCAPE = re.compile(r"\\.", re.DOTALL)  # inside strings only; \" among them
_STRING = re.compile(r'"[^"]*"')  # once escapes are gone, a string holds no quote
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_AS_STEPS = bytes.maketrans(b"[]{}", b"\x01\xff\x01\xff")  # +1 and -1 as signed bytes


class JSONTooDeep(ValueError):
    pass


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")  # as DRF's strict JSONParser: NaN and Infinity are refused


def nesting_exceeds(text: str, max_depth: int) -> bool:
    """Whether the JSON ``text`` nests arrays and objects deeper than ``max_depth`` (for valid JSON, exactly)."""
    if text.count("[") + text.count("{") <= max_depth:
        return False  # too few brackets to go that deep: the usual body stops here
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", _ESCAPE.sub("", text))).encode("ascii")
    # The running sum of +1 per opening and -1 per closing bracket is the depth; summed in C (about 0.2 s for
    # 2.5 MB of nothing but brackets, less than parsing them).
    return max(accumulate(array("b", brackets.translate(_AS_STEPS))), default=0) > max_depth


# One decoder for every body: json.loads with parse_constant builds a new one per call (about 15 us on the
# check-in's hot path).
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def loads_bounded(data: bytes | str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` for request bodies: ValueError (JSONTooDeep, JSONDecodeError, UnicodeDecodeError) for a
    body nested deeper than ``max_depth``, malformed, or holding NaN/Infinity; never RecursionError."""
    text = data.decode(json.detect_encoding(data)) if isinstance(data, bytes | bytearray) else data
    too_deep = JSONTooDeep(
        f"the body nests arrays or objects more than {max_depth} levels deep; send a flatter document"
    )
    if nesting_exceeds(text, max_depth):
        raise too_deep
    try:
        return _DECODER.decode(text)
    except RecursionError:  # only when called with a max_depth beyond what the interpreter's stack allows
        raise too_deep from None


class BoundedJSONParser(JSONParser):
    """DRF's JSONParser with ``loads_bounded``: too deep or malformed is a ParseError (400) saying why."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return loads_bounded(stream.read().decode(encoding))
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
