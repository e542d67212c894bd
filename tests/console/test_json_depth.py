"""JSON bodies nested absurdly deep are a 400 that says so, on every JSON endpoint; normal bodies are untouched."""

from __future__ import annotations

import json

import pytest

from console.models import Model, Project
from console.parsers import MAX_JSON_DEPTH, JSONTooDeep, loads_bounded
from tests.conftest import api_client_for

DEEP_BODY = b"[" * 5000 + b"]" * 5000  # 10 kB


def nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def test_loads_bounded__5000_levels__is_refused_without_recursion():
    with pytest.raises(JSONTooDeep, match="more than 64 levels deep"):
        loads_bounded(DEEP_BODY)


def test_loads_bounded__unclosed_deep_body__is_refused():
    with pytest.raises(ValueError):
        loads_bounded(b'{"a":' * 5000)


def test_loads_bounded__exactly_the_limit__parses():
    value = loads_bounded(nested(MAX_JSON_DEPTH).encode())
    for _ in range(MAX_JSON_DEPTH):
        value = value["a"]
    assert value == 1
    with pytest.raises(JSONTooDeep):
        loads_bounded(nested(MAX_JSON_DEPTH + 1).encode())


def test_loads_bounded__brackets_and_escaped_quotes_inside_strings__do_not_count():
    text = json.dumps({"note": "[" * 200 + '\\"{' * 100, "list": [["\\", "]"], {"k]": '"'}]})
    assert loads_bounded(text.encode()) == json.loads(text)


def test_loads_bounded__utf16_body__parses_as_json_loads_would():
    assert loads_bounded('{"name": "caf\u00e9", "n": [1, [2]]}'.encode("utf-16")) == {
        "name": "caf\u00e9",
        "n": [1, [2]],
    }


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_loads_bounded__nan_and_infinity__are_refused_as_not_json(constant):
    with pytest.raises(ValueError, match="is not JSON"):
        loads_bounded(f'{{"x": {constant}}}'.encode())


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/api/projects/",
        "/api/projects/kiosk/models/",
        "/api/projects/kiosk/members/",
        "/api/projects/kiosk/device-types/",
    ],
)
def test_developer_endpoints__5000_levels_deep_body__is_400_saying_so(project, owner, path):
    response = api_client_for(owner).post(path, DEEP_BODY, content_type="application/json")
    assert response.status_code == 400
    assert "more than 64 levels deep" in response.json()["detail"]


@pytest.mark.django_db
def test_create_project__deep_body__creates_nothing(owner):
    body = '{"slug": "deep", "name": "Deep", "description": ' + nested(5000) + "}"
    response = api_client_for(owner).post("/api/projects/", body, content_type="application/json")
    assert response.status_code == 400
    assert not Project.objects.filter(slug="deep").exists()


@pytest.mark.django_db
def test_create_model__ordinary_body__still_works(project, owner):
    response = api_client_for(owner).post(
        "/api/projects/kiosk/models/", json.dumps({"name": "ok", "description": "x"}), content_type="application/json"
    )
    assert response.status_code == 201
    assert Model.objects.filter(project=project, name="ok").exists()
