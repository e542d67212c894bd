"""Sign-in lock-out: wrong passwords in a row, by form or by HTTP Basic, lock that username from that address."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

LIMIT = 5


@pytest.fixture(autouse=True)
def failure_limit(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)


def sign_in(client: Client, username: str, password: str):
    return client.post("/login/", {"username": username, "password": password})


def basic(username: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {raw}"}


def api_get(client: Client, username: str, password: str):
    return client.get("/api/projects/", **basic(username, password))


def test_form_login__wrong_passwords_up_to_the_limit__are_each_answered_as_a_wrong_password(owner):
    client = Client()

    responses = [sign_in(client, owner.username, f"guess-{i}") for i in range(LIMIT - 1)]

    assert [r.status_code for r in responses] == [200] * (LIMIT - 1)
    assert all(b"username and password didn" in r.content for r in responses)


def test_form_login__after_the_limit__refuses_even_the_right_password_with_a_message(owner):
    client = Client()
    for i in range(LIMIT):
        sign_in(client, owner.username, f"guess-{i}")

    response = sign_in(client, owner.username, PASSWORD)

    assert response.status_code == 429
    assert b"Too many failed sign-ins" in response.content
    assert "_auth_user_id" not in client.session


def test_form_login__after_the_cool_off__the_right_password_signs_in(owner, settings):
    client = Client()
    for i in range(LIMIT):
        sign_in(client, owner.username, f"guess-{i}")
    from axes.models import AccessAttempt

    # The clock, moved: the cool-off counts from the last failure's recorded time.
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))

    response = sign_in(client, owner.username, PASSWORD)

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(owner.pk)


def test_form_login__a_locked_user__leaves_another_user_free_to_sign_in(owner, teammate):
    client = Client()
    for i in range(LIMIT):
        sign_in(client, owner.username, f"guess-{i}")

    response = sign_in(client, teammate.username, PASSWORD)

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(teammate.pk)


def test_basic_auth__after_the_limit__refuses_even_the_right_password_with_a_message(owner, project):
    client = Client()
    statuses = [api_get(client, owner.username, f"guess-{i}").status_code for i in range(LIMIT)]

    response = api_get(client, owner.username, PASSWORD)

    assert statuses == [401] * (LIMIT - 1) + [429]  # the failure that reaches the limit already says so
    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.json()["detail"]
    assert int(response["Retry-After"]) == 15 * 60


def test_basic_auth__before_the_limit__the_right_password_still_works(owner, project):
    client = Client()
    for i in range(LIMIT - 1):
        api_get(client, owner.username, f"guess-{i}")

    response = api_get(client, owner.username, PASSWORD)

    assert response.status_code == 200


def test_basic_auth__a_locked_user__leaves_another_user_free(owner, teammate, project):
    client = Client()
    for i in range(LIMIT):
        api_get(client, owner.username, f"guess-{i}")

    response = api_get(client, teammate.username, PASSWORD)

    assert response.status_code == 200


def test_basic_and_form_failures__add_up_to_one_lock(owner, project):
    client = Client()
    for i in range(LIMIT - 2):
        api_get(client, owner.username, f"guess-{i}")
    for i in range(2):
        sign_in(client, owner.username, f"form-guess-{i}")

    assert api_get(client, owner.username, PASSWORD).status_code == 429
    assert sign_in(client, owner.username, PASSWORD).status_code == 429
