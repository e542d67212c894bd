"""``?limit=`` and ``?offset=`` on every developer list: a clamp or a 400 that says what to send, never a 500."""

from __future__ import annotations

import pytest

from console.pagination import MAX_LIMIT, MAX_OFFSET
from jobs.models import Job
from tests.conftest import api_client_for

pytestmark = pytest.mark.django_db

JOBS = "/api/projects/kiosk/jobs/"


@pytest.fixture
def jobs(project):
    Job.objects.bulk_create(Job(project=project, kind="check") for _ in range(MAX_LIMIT + 2))


@pytest.mark.parametrize("limit", [str(MAX_LIMIT + 1), str(2**63), str(2**64 + 7), "9" * 400])
def test_limit__beyond_the_largest_page__is_served_as_the_largest_page(jobs, viewer, limit):
    response = api_client_for(viewer).get(JOBS, {"limit": limit})

    assert response.status_code == 200
    body = response.json()
    assert (body["count"], len(body["results"])) == (MAX_LIMIT + 2, MAX_LIMIT)
    assert f"limit={MAX_LIMIT}" in body["next"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"offset": str(2**63)}, f"Ensure this value is less than or equal to {MAX_OFFSET}."),
        ({"offset": str(MAX_OFFSET + 1)}, f"Ensure this value is less than or equal to {MAX_OFFSET}."),
        ({"offset": "-1"}, "Ensure this value is greater than or equal to 0."),
        ({"offset": "ten"}, "A valid integer is required."),
        ({"limit": "0"}, "Ensure this value is greater than or equal to 1."),
        ({"limit": "-3"}, "Ensure this value is greater than or equal to 1."),
        ({"limit": "lots"}, "A valid integer is required."),
        ({"limit": "1.5"}, "A valid integer is required."),
    ],
)
def test_limit_or_offset__not_a_whole_number_in_range__is_400_saying_what_to_send(project, viewer, query, message):
    response = api_client_for(viewer).get(JOBS, query)

    assert response.status_code == 400
    assert response.json() == {name: [message] for name in query}


def test_offset__past_the_end_but_in_range__is_an_empty_page(project, viewer):
    response = api_client_for(viewer).get(JOBS, {"offset": str(MAX_OFFSET), "limit": "5"})

    assert response.status_code == 200
    assert response.json()["results"] == []


def test_no_limit__is_the_default_page_and_every_page_is_reachable(jobs, viewer):
    client = api_client_for(viewer)

    first = client.get(JOBS).json()
    last = client.get(JOBS, {"offset": str(MAX_LIMIT)}).json()

    assert len(first["results"]) == 50
    assert len(last["results"]) == 2 and last["next"] is None


def test_huge_limit__on_a_list_the_outsider_may_not_see__is_still_404(project, outsider):
    assert api_client_for(outsider).get(JOBS, {"limit": str(2**64)}).status_code == 404
