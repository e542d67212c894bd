from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from devices.agent.cli import main as agent_main
from devices.agent.client import Agent, default_config
from devices.agent.delivery import manifest_problem
from devices.agent.errors import AgentError
from devices.core.bucketing import bucket
from devices.core.fingerprint import config_fingerprint
from devices.core.signing import generate_keypair, sign_manifest
from tests.devices.fake_device_server import API, MODEL, FakeDeviceServer, FakeVersion, make_model_bytes

X = {"x": np.zeros((1, 4), dtype=np.float32)}


def installed_add(agent: Agent) -> float:
    """Which test model is running: v1 adds 1, v2 adds 2."""
    return float(agent.run(MODEL, X)[0][0, 0])


def events_of(server: FakeDeviceServer, event_type: str) -> list[dict]:
    return [event for event in server.events.values() if event["type"] == event_type]


def test_enroll__stores_token_config_and_project_key(server: FakeDeviceServer, enrolled_agent: Agent) -> None:
    state = json.loads((enrolled_agent.state_dir / "state.json").read_text())

    assert state["device_token"] in server.devices
    assert state["public_key"] == server.public_key
    assert state["config"]["region"] == "DE"
    assert state["config_fingerprint_sent"] == config_fingerprint(state["config"])


def test_enroll__twice_without_force__is_refused(server: FakeDeviceServer, enrolled_agent: Agent) -> None:
    with pytest.raises(AgentError, match="already enrolled"):
        enrolled_agent.enroll(server.url, server.enrollment_key, default_config(), models=[MODEL])


def test_checkin__installs_the_assigned_version_and_runs_it(
    server: FakeDeviceServer, enrolled_agent: Agent, v1: FakeVersion
) -> None:
    server.assign(v1)

    result = enrolled_agent.checkin()

    assert result.models[MODEL] == "installed version 1"
    assert installed_add(enrolled_agent) == 1.0
    assert [e["type"] for e in server.events.values()] == [
        "download_started",
        "download_completed",
        "install_succeeded",
    ]
    download = server.downloads[0]
    assert download["authorization"].startswith("Device ")  # same origin: the token goes along


def test_checkin__unchanged_answer__is_a_304_and_nothing_is_fetched(
    server: FakeDeviceServer, enrolled_agent: Agent, v1: FakeVersion
) -> None:
    server.assign(v1)
    enrolled_agent.checkin()

    result = enrolled_agent.checkin()

    assert result.http_status == 304
    assert server.requests_to(f"{API}/checkin")[-1]["headers"]["If-None-Match"]
    assert len(server.downloads) == 1


def test_checkin__etag_reissued_with_a_304__is_sent_next_time(
    server: FakeDeviceServer, enrolled_agent: Agent, v1: FakeVersion
) -> None:
    server.assign(v1)
    server.etag_ticket = "first"
    enrolled_agent.checkin()
    server.etag_ticket = "second"

    assert enrolled_agent.checkin().http_status == 304
    enrolled_agent.checkin()

    sent = [request["headers"]["If-None-Match"] for request in server.requests_to(f"{API}/checkin")[1:]]
    assert [tag.strip('"').split(".")[1] for tag in sent] == ["first", "second"]


def test_checkin__server_without_the_config__gets_it_resent_after_409(
    server: FakeDeviceServer, enrolled_agent: Agent
) -> None:
    server.forget_configs = True
    enrolled_agent.checkin()

    first, second = server.requests_to(f"{API}/checkin")
    assert "config" not in first["body"]
    assert second["body"]["config"] == enrolled_agent.config


def test_download__dropped_halfway__resumes_with_range_and_if_range(
    server: FakeDeviceServer, enrolled_agent: Agent, v1: FakeVersion
) -> None:
    server.assign(v1)
    server.drop_downloads = 1

    result = enrolled_agent.checkin()

    assert result.models[MODEL] == "installed version 1"
    first, second = server.downloads
    half = len(v1.data) // 2
    assert (first["status"], first["sent"]) == (200, half)
    assert second["range"] == f"bytes={half}-"
    assert second["if_range"] == f'"{v1.sha256}"'
    assert (second["status"], second["sent"]) == (206, len(v1.data) - half)
    assert installed_add(enrolled_agent) == 1.0


def test_download__partial_file_of_a_stopped_agent__is_resumed_after_restart(
    server: FakeDeviceServer, make_agent, v1: FakeVersion
) -> None:
    agent = make_agent(download_attempts=1)
    agent.enroll(server.url, server.enrollment_key, default_config(region="DE"), models=[MODEL])
    server.assign(v1)
    server.drop_downloads = 1

    assert "failed" in agent.checkin().models[MODEL]
    assert (agent.state_dir / "cache" / f"{v1.sha256}.onnx.part").stat().st_size == len(v1.data) // 2
    restarted = make_agent(download_attempts=1)
    assert restarted.checkin().models[MODEL] == "installed version 1"

    assert server.downloads[-1]["range"] == f"bytes={len(v1.data) // 2}-"
    assert [e["reason"] for e in events_of(server, "download_failed")][0].startswith("download incomplete")


def test_download__partial_file_with_a_stale_etag__is_replaced_not_extended(
    server: FakeDeviceServer, enrolled_agent: Agent, v1: FakeVersion
) -> None:
    cache = enrolled_agent.state_dir / "cache"
    (cache / f"{v1.sha256}.onnx.part").write_bytes(b"bytes of some other file")
    (cache / f"{v1.sha256}.onnx.part.json").write_text(json.dumps({"etag": '"stale"'}))
    server.assign(v1)

    assert enrolled_agent.checkin().models[MODEL] == "installed version 1"
    assert server.downloads[0]["if_range"] == '"stale"'
    assert server.downloads[0]["status"] == 200  # If-Range did not match: whole file


def test_sha256_mismatch__is_rejected_and_the_previous_version_stays_installed(
    server: FakeDeviceServer, enrolled_agent: Agent, v1: FakeVersion
) -> None:
    server.assign(v1)
    enrolled_agent.checkin()
    corrupted = FakeVersion(2, "1.1.0", make_model_bytes(2.0))
    corrupted.served = make_model_bytes(3.0)[: len(corrupted.data)].ljust(len(corrupted.data), b"\0")
    server.assign(corrupted)

    result = enrolled_agent.checkin()

    assert "sha256 mismatch" in result.models[MODEL]
    assert installed_add(enrolled_agent) == 1.0
    assert enrolled_agent.store.current(MODEL)["version_id"] == 1
    assert not list((enrolled_agent.state_dir / "cache").glob(f"{corrupted.sha256}*"))
    assert "sha256 mismatch" in events_of(server, "download_failed")[0]["reason"]
    # Not retried at every check-in: the same bytes are blocked for a while, so nothing is pending.
    assert enrolled_agent.checkin().http_status == 304
    assert len(server.downloads) == 2


def test_bad_signature__is_rejected_before_any_download(
    server: FakeDeviceServer, enrolled_agent: Agent, v1: FakeVersion
) -> None:
    other_key, _ = generate_keypair()
    v1.signing_key = other_key
    server.assign(v1)

    result = enrolled_agent.checkin()

    assert result.models[MODEL] == "rejected version 1: manifest signature invalid"
    assert server.downloads == []
    assert enrolled_agent.store.current(MODEL) is None
    assert events_of(server, "install_failed")[0]["reason"] == "manifest signature invalid"


def test_repeated_assignment__is_installed_from_the_cache_without_a_download(
    server: FakeDeviceServer, enrolled_agent: Agent, v1: FakeVersion, v2: FakeVersion
) -> None:
    server.assign(v1)
    enrolled_agent.checkin()
    server.assign(v2)
    enrolled_agent.checkin()

    server.assign(v1)
    result = enrolled_agent.checkin()

    assert result.models[MODEL] == "installed version 1"
    assert [d["version_id"] for d in server.downloads] == [1, 2]
    assert installed_add(enrolled_agent) == 1.0


def test_app_upgrade__sends_the_new_config_and_reuses_cached_bytes(
    server: FakeDeviceServer, enrolled_agent: Agent, v1: FakeVersion
) -> None:
    server.assign(v1)
    enrolled_agent.checkin()
    same_bytes_new_id = FakeVersion(7, "1.0.1", v1.data)
    server.assign(same_bytes_new_id)

    enrolled_agent.update_config(app_version="2.4.0")
    result = enrolled_agent.checkin()

    assert server.requests_to(f"{API}/checkin")[-1]["body"]["config"]["app_version"] == "2.4.0"
    assert result.models[MODEL] == "installed version 7"
    assert len(server.downloads) == 1


def test_unloadable_package__fails_to_install_and_the_previous_version_stays(
    server: FakeDeviceServer, enrolled_agent: Agent, v1: FakeVersion
) -> None:
    server.assign(v1)
    enrolled_agent.checkin()
    server.assign(FakeVersion(3, "2.0.0", b"this is not an onnx model"))

    result = enrolled_agent.checkin()

    assert "onnxruntime cannot load" in result.models[MODEL]
    assert installed_add(enrolled_agent) == 1.0
    assert events_of(server, "install_failed")[0]["version_id"] == 3


def test_installed_file_damaged_on_disk__rolls_back_to_the_previous_version_on_run(
    server: FakeDeviceServer, make_agent, v1: FakeVersion, v2: FakeVersion
) -> None:
    agent = make_agent()
    agent.enroll(server.url, server.enrollment_key, default_config(region="DE"), models=[MODEL])
    server.assign(v1)
    agent.checkin()
    server.assign(v2)
    agent.checkin()
    (agent.state_dir / "cache" / f"{v2.sha256}.onnx").write_bytes(b"damaged")
    restarted = make_agent()  # no session cached in memory: it must load the file

    assert installed_add(restarted) == 1.0
    restarted.checkin()

    rollback = events_of(server, "rollback")[0]
    assert rollback["version_id"] == 2
    assert "back to version 1" in rollback["reason"]
    token = json.loads((restarted.state_dir / "state.json").read_text())["device_token"]
    assert server.devices[token]["installed"][MODEL]["version_id"] == 1


def test_event_batch__retried_after_a_server_error__reuses_the_same_ids(
    server: FakeDeviceServer, enrolled_agent: Agent, v1: FakeVersion
) -> None:
    server.assign(v1)
    server.fail_event_posts = 1

    enrolled_agent.checkin()
    assert len(enrolled_agent.outbox.pending()) == 3
    enrolled_agent.flush_events()

    first, second = server.event_posts
    assert first == second
    assert len(server.events) == 3
    assert enrolled_agent.outbox.pending() == []


def test_event_batch__whose_answer_was_lost__is_counted_once(
    server: FakeDeviceServer, enrolled_agent: Agent, v1: FakeVersion
) -> None:
    server.assign(v1)
    server.lose_event_answers = 1

    enrolled_agent.checkin()
    assert len(enrolled_agent.outbox.pending()) == 3  # no answer: the agent cannot know they arrived
    enrolled_agent.flush_events()

    assert server.event_posts[0] == server.event_posts[1]
    assert len(server.events) == 3


def test_inference_stats__are_reported_per_version_at_the_next_checkin(
    server: FakeDeviceServer, enrolled_agent: Agent, v1: FakeVersion
) -> None:
    server.assign(v1)
    enrolled_agent.checkin()
    for _ in range(5):
        installed_add(enrolled_agent)
    enrolled_agent.record_accuracy(MODEL, True)

    enrolled_agent.checkin()

    (stats_event,) = events_of(server, "inference_stats")
    assert stats_event["version_id"] == 1
    assert stats_event["stats"]["count"] == 5
    assert stats_event["stats"]["accuracy"] == 1.0
    assert 0 <= stats_event["stats"]["latency_ms_p50"] <= stats_event["stats"]["latency_ms_p90"]


def test_state_files__are_readable_by_the_owner_only(
    server: FakeDeviceServer, enrolled_agent: Agent, v1: FakeVersion
) -> None:
    server.assign(v1)
    server.fail_event_posts = 1  # leaves an outbox file behind
    server.drop_downloads = 1  # and a partial-download record on the way
    old_umask = os.umask(0)  # the most permissive umask must not matter
    try:
        enrolled_agent.checkin()
    finally:
        os.umask(old_umask)

    paths = list(Path(enrolled_agent.state_dir).rglob("*"))
    files = [p for p in paths if p.is_file()]
    assert {p.name for p in files} >= {"state.json", "installed.json", "outbox.json", f"{v1.sha256}.onnx"}
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {"0o600"}
    dirs = [enrolled_agent.state_dir, *[p for p in paths if p.is_dir()]]
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in dirs} == {"0o700"}


def test_rejected_token__says_to_enroll_again(server: FakeDeviceServer, enrolled_agent: Agent) -> None:
    server.devices.clear()

    with pytest.raises(AgentError, match="enroll again"):
        enrolled_agent.checkin()


def test_agent_bucket__agrees_with_the_shared_vectors(
    server: FakeDeviceServer, make_agent, bucketing_vectors: list[dict]
) -> None:
    # Server and agent import one function; these vectors pin it for any future agent port too.
    for vector in bucketing_vectors:
        assert bucket(vector["salt"], vector["key"]) == vector["bucket"]
    agent = make_agent()
    device_key = next(v["key"] for v in bucketing_vectors if v["key"] == "device-1")
    agent.enroll(server.url, server.enrollment_key, default_config(), models=[MODEL], device_id=device_key)
    for vector in bucketing_vectors:
        if vector["key"] == device_key:
            assert agent.bucket(vector["salt"]) == vector["bucket"]


def test_cli__enrolls_checks_in_and_shows_status_without_the_token(
    server: FakeDeviceServer, tmp_path: Path, v1: FakeVersion, capsys: pytest.CaptureFixture[str]
) -> None:
    server.assign(v1)
    state = str(tmp_path / "cli-agent")
    base = ["--state-dir", state]

    enroll = ["enroll", "--server", server.url, "--key", server.enrollment_key, "--model", MODEL, "--region", "de"]
    assert agent_main([*base, *enroll, "--attr", "tier=pro", "--attr", "ram_gb=4"]) == 0
    assert agent_main([*base, "checkin", "--app-version", "2.4.0"]) == 0
    capsys.readouterr()
    assert agent_main([*base, "status"]) == 0

    status = json.loads(capsys.readouterr().out)
    assert status["config"]["region"] == "DE"
    assert status["config"]["attributes"] == {"tier": "pro", "ram_gb": 4}
    assert status["config"]["app_version"] == "2.4.0"
    assert status["installed"][MODEL]["current"]["version_id"] == 1
    token = json.loads((tmp_path / "cli-agent" / "state.json").read_text())["device_token"]
    assert token not in json.dumps(status)


def test_cli__without_enrollment__exits_1_with_a_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert agent_main(["--state-dir", str(tmp_path / "new"), "checkin"]) == 1
    assert "not enrolled" in capsys.readouterr().err


def signed_manifest(private_pem: bytes, **changes: object) -> dict:
    manifest = {
        "model": MODEL,
        "version_id": 1,
        "sha256": "ab" * 32,
        "size": 10,
        "format": "onnx",
        "download_url": "/api/device/v1/packages/1",
    }
    manifest.update(changes)
    return {**manifest, "signature": sign_manifest(private_pem, manifest)}


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({}, None),
        ({"download_url": ""}, "manifest lacks download_url"),
        ({"model": "other"}, "manifest is for model 'other', not 'digit-classifier'"),
        ({"sha256": "AB" * 32}, "manifest sha256 is not a lowercase hex sha256"),
        ({"size": True}, "manifest size is not a positive integer"),
        ({"size": 0}, "manifest size is not a positive integer"),
        ({"format": "tflite"}, "package format 'tflite' is not onnx"),
    ],
)
def test_manifest_problem__names_what_makes_a_manifest_unsafe_to_install(changes: dict, problem: str | None) -> None:
    private_pem, public_key = generate_keypair()

    assert manifest_problem(signed_manifest(private_pem, **changes), model=MODEL, public_key=public_key) == problem


def test_manifest_problem__a_signed_field_changed_after_signing__fails_the_signature() -> None:
    private_pem, public_key = generate_keypair()
    manifest = {**signed_manifest(private_pem), "size": 11}

    assert manifest_problem(manifest, model=MODEL, public_key=public_key) == "manifest signature invalid"


def test_run__with_nothing_installed__says_so(enrolled_agent: Agent) -> None:
    with pytest.raises(AgentError, match="no working version of 'digit-classifier' is installed"):
        enrolled_agent.run(MODEL, X)
    with pytest.raises(AgentError, match="no working version"):
        enrolled_agent.model_inputs(MODEL)


def test_agent_and_simulator__load_without_django() -> None:
    """A device has no Django: the agent, its CLI and the simulator import only the standard library, onnxruntime,
    numpy, cryptography and the pure devices.core / devices.catalog.builtin."""
    code = (
        "import sys, devices.agent.cli, devices.agent.simulate; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'rest_framework', 'console', 'jobs')))"
    )
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
