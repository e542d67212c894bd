"""Schemathesis over our own OpenAPI schema, against a live server on the test database (PostgreSQL under make test).

Every operation gets a bounded number of generated requests (bodies, query strings and headers from the schema,
valid and invalid), sent as the project's owner and as its viewer, with the path parameters pointed at real
objects so the requests reach the code behind the 404. Each response must be no server error and must match the
schema (status code documented, content type, body shape). Device endpoints are fuzzed without a device token
(their bodies are covered by tests/devices); the point here is that nothing answers 5xx or off-schema.
"""

from __future__ import annotations

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from console.models import ApiToken
from tests.devices.fleet_helpers import enroll, ready_version

pytestmark = [pytest.mark.django_db(transaction=True)]

EXAMPLES_PER_OPERATION = {"owner": 8, "viewer": 4}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def fuzz_world(project, model, owner, viewer):
    from django.core.cache import cache

    from devices.fleet import services as fleet_services
    from devices.rollouts import services as rollouts_services
    from devices.rules import services as rules_services
    from jobs.models import Job

    cache.clear()
    version = ready_version(model)
    rule = rules_services.create_rule(model=model, version=version)
    _, key = fleet_services.rotate_enrollment_key(project=project)
    assert enroll(key, device_id="device-1")[0].status_code == 201
    job = Job.objects.filter(input_version=version).first()
    rollout = rollouts_services.propose_rollout(
        model=model,
        version=version,
        user=owner,
        stages=[{"percent": 10, "dwell_minutes": 60}, {"percent": 100, "dwell_minutes": 60}],
    )
    from devices.experiments import services as experiment_services

    experiment = experiment_services.create_experiment(
        model=model,
        user=owner,
        name="ab",
        arms=[
            experiment_services.ArmSpec(version, 50),
            experiment_services.ArmSpec(ready_version(model, seed=9), 50),
        ],
        traffic_percent=100,
        primary_metric="latency",
        guardrail_metrics=["accuracy"],
        target={"device_types": ["x86-gateway"]},
    )
    experiment_services.start_experiment(experiment=experiment, user=owner)
    return {
        "path": {
            "experiment_id": experiment.pk,
            "project": project.slug,
            "model": model.name,
            "number": version.number,
            "job_id": job.pk,
            "slug": "x86-gateway",
            "username": "vic-viewer",
            "device_id": "device-1",
            "rule_id": rule.pk,
            "version_id": version.pk,
            "rollout_id": rollout.pk,
        },
        "tokens": {"owner": ApiToken.issue(owner, "fuzz")[1], "viewer": ApiToken.issue(viewer, "fuzz")[1]},
    }


def _fuzz_operation(
    operation, base_url: str, token: str, path_values: dict, failures: list, sent: list, examples: int
) -> None:
    session = requests.Session()

    @given(case=operation.as_strategy())
    @hypothesis.settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        for name in list(case.path_parameters or {}):
            if name in path_values:
                case.path_parameters[name] = path_values[name]
        response = case.call(
            base_url=base_url, session=session, headers={"Authorization": f"Token {token}"}, timeout=30
        )
        sent.append(response.status_code)
        try:
            case.validate_response(response, checks=CHECKS)
        except (Exception, BaseExceptionGroup) as exc:  # collect every operation's failure, then report them together
            found = getattr(exc, "exceptions", [exc])
            what = "; ".join(f"{type(e).__name__}: {str(e).splitlines()[0][:160]}" for e in found)
            failures.append(f"{operation.label} -> {response.status_code} {what} [{response.text[:160]}]")

    run()


@pytest.mark.parametrize("persona", ["owner", "viewer"])
def test_openapi_schema__generated_requests__get_no_5xx_and_match_the_schema(live_server, fuzz_world, persona):
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/?format=json")
    failures: list[str] = []
    sent: list[int] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/api/health/":
            continue  # answers 503 by design while no worker runs (none does here); tests/console/test_health.py
        operations += 1
        _fuzz_operation(
            operation,
            live_server.url,
            fuzz_world["tokens"][persona],
            fuzz_world["path"],
            failures,
            sent,
            EXAMPLES_PER_OPERATION[persona],
        )

    print(  # shown with -s: the figures of a run
        f"schemathesis as {persona}: {operations} operations, {len(sent)} requests, "
        f"{sum(code >= 500 for code in sent)} 5xx, {len(failures)} failing checks"
    )
    assert operations >= 30  # the whole API, not a fraction of it
    assert not failures, f"{len(failures)} failing responses:\n" + "\n".join(sorted(set(failures))[:40])
