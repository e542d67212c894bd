"""The events endpoint's quick check of the usual batch (``common_events``) against EventBatchSerializer.

Whatever the quick check takes, it must give exactly what the serializer gives; whatever the serializer refuses,
the quick check must hand over (None) so that the 400 still comes from the serializer.
"""

from __future__ import annotations

from datetime import UTC, datetime

import hypothesis
from hypothesis import given
from hypothesis import strategies as st

from devices.telemetry.serializers import DEVICE_EVENT_TYPES, EventBatchSerializer, common_events

AT = "2026-05-01T10:00:00.123Z"


def usual_event(**extra) -> dict:
    return {
        "id": "0b6f9c1e-8d1a-4c1b-9d57-3f2f1b0c9a77",
        "type": "inference_stats",
        "model": "digit-classifier",
        "version_id": 7,
        "at": AT,
        "reason": "",
        "stats": {"count": 20, "latency_ms_p50": 4.0, "accuracy": 0.9},
        **extra,
    }


def serializer_events(body):
    serializer = EventBatchSerializer(data=body)
    return serializer.validated_data["events"] if serializer.is_valid() else None


def test_common_events__usual_batch__equals_the_serializers_events():
    body = {
        "events": [
            usual_event(),
            usual_event(id="b", type="download_failed", reason="sha256 mismatch", stats={}),
            usual_event(id="c", type="feedback", stats={"prediction": 3, "label": 3, "count": 1}),
            {"id": "d", "type": "rollback", "at": "2026-05-01T12:00:00+02:00"},
        ]
    }

    events = common_events(body)

    assert events == serializer_events(body)
    assert events[0]["at"] == datetime(2026, 5, 1, 10, 0, 0, 123000, tzinfo=UTC)
    assert events[2]["stats"] == {"prediction": 3, "label": 3}  # a feedback event keeps its label only
    assert events[3] == {**events[3], "model": "", "version_id": None, "reason": "", "stats": {}}


def test_common_events__anything_the_serializer_refuses__is_handed_to_it():
    refused = [
        {"events": [usual_event(type="exploded")]},
        {"events": [usual_event(id="a" * 65)]},
        {"events": [usual_event(id="nul\x00")]},
        {"events": [usual_event(version_id=0)]},
        {"events": [usual_event(version_id=2**64)]},
        {"events": [usual_event(version_id=True)]},
        {"events": [usual_event(at="yesterday")]},
        {"events": [usual_event(stats={"count": -1})]},
        {"events": [usual_event(type="feedback", stats={"prediction": 1, "label": "cat"})]},
        {"events": [usual_event(id=str(n)) for n in range(101)]},
        {"events": "not a list"},
        {"events": [["not", "an", "object"]]},
        {},
    ]
    for body in refused:
        assert serializer_events(body) is None, body
        assert common_events(body) is None, body


def test_common_events__values_the_serializer_would_coerce__are_handed_to_it():
    for event in (usual_event(id=" padded "), usual_event(id=5), usual_event(version_id="7"), usual_event(model=None)):
        assert common_events({"events": [event]}) is None, event


odd = st.one_of(
    st.text(max_size=70),
    st.sampled_from(["", " ", " x", "x ", "\x00", "\ud800", "é", "1", "2026-05-01"]),
    st.integers(min_value=-2, max_value=2**64),
    st.floats(),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=1),
)


def mostly(valid):
    """Valid values most of the time, so that whole batches of valid events come up often."""
    return st.sampled_from([True, True, True, True, False]).flatmap(lambda usual: valid if usual else odd)


label = st.one_of(st.integers(0, 9), st.sampled_from(["cat", "dog"]))
plain = {
    "id": st.from_regex(r"[A-Za-z0-9:-]{1,64}", fullmatch=True),
    "type": st.sampled_from([str(t) for t in DEVICE_EVENT_TYPES]),
    "at": st.sampled_from([AT, "2026-05-01T10:00:00", "2026-05-01 10:00:00+05:30", "2026-05-01"]),
    "model": st.sampled_from(["", "digit-classifier"]),
    "version_id": st.one_of(st.none(), st.integers(min_value=1, max_value=2**63 - 1)),
    "reason": st.text(max_size=10).map(str.strip),
    "stats": st.dictionaries(
        st.sampled_from(["count", "errors", "latency_ms_p50", "latency_ms_mean", "accuracy", "x"]),
        st.one_of(st.integers(0, 5), st.floats(0, 1)),
    ).map(lambda stats: {**stats, "count": 5} if "errors" in stats else stats)
    | st.fixed_dictionaries({"prediction": label, "label": label}),
}
REQUIRED = ("id", "type", "at")
plain_events = st.fixed_dictionaries(
    {name: plain[name] for name in REQUIRED}, optional={k: v for k, v in plain.items() if k not in REQUIRED}
)
any_events = st.fixed_dictionaries(
    {name: mostly(plain[name]) for name in REQUIRED},
    optional={**{k: mostly(v) for k, v in plain.items() if k not in REQUIRED}, "unknown": odd},
)
EXAMPLES = hypothesis.settings(max_examples=300, deadline=None, database=None, derandomize=True)


@given(events=st.lists(any_events, max_size=3))
@EXAMPLES
def test_common_events__any_batch__is_the_serializers_answer_or_handed_to_it(events):
    body = {"events": events}

    quick, full = common_events(body), serializer_events(body)

    assert quick is None or quick == full


@given(events=st.lists(plain_events, max_size=3))
@EXAMPLES
def test_common_events__batch_of_plain_values__is_taken_whenever_the_serializer_takes_it(events):
    body = {"events": events}

    quick, full = common_events(body), serializer_events(body)

    assert quick == full
