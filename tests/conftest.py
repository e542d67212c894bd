"""Shared personas, model files and guards for the whole suite."""

from __future__ import annotations

import importlib
import ipaddress
import socket
from pathlib import Path

import onnx
import pytest

from console.catalog import services as catalog_services
from console.projects import roles
from console.projects import services as project_services
from jobs.tooling import reference_models

PASSWORD = "correct-horse-battery"


# --- guards --------------------------------------------------------------------------------------

_real_connect = socket.socket.connect


def _loopback_only(sock, address):
    host = address[0] if isinstance(address, tuple) else None
    if host is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = ipaddress.ip_address(socket.gethostbyname(host)) if host == "localhost" else None
        if ip is None or not ip.is_loopback:
            raise RuntimeError(f"tests may not open outbound connections (tried {address!r})")
    return _real_connect(sock, address)


@pytest.fixture(autouse=True)
def block_outbound_network(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


@pytest.fixture(autouse=True)
def builtin_device_types(request):
    """Transactional tests flush every table, data-migration rows included: put the catalog back when gone."""
    names = request.fixturenames
    if "transactional_db" in names or "live_server" in names:
        request.getfixturevalue("transactional_db")
    elif "db" in names or request.node.get_closest_marker("django_db"):
        request.getfixturevalue("db")
    else:
        return
    from django.apps import apps

    from devices.models import DeviceType

    if not DeviceType.objects.filter(project=None).exists():
        importlib.import_module("devices.migrations.0002_builtin_device_types").seed(apps, None)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """The test database as `make migrate` leaves it: migrations plus the cache table (used without REDIS_URL)."""
    from django.core.management import call_command

    with django_db_blocker.unblock():
        call_command("createcachetable", verbosity=0)


@pytest.fixture(scope="session", autouse=True)
def collected_static():
    """Pages link hashed, compressed static files as in production, so collect them once per session."""
    from django.conf import settings
    from django.contrib.staticfiles import finders
    from django.core.management import call_command

    # Skipped when nothing changed since the last run: hashing and compressing take several seconds.
    manifest = Path(settings.STATIC_ROOT) / "staticfiles.json"
    newest = max(
        Path(storage.path(path)).stat().st_mtime
        for finder in finders.get_finders()
        for path, storage in finder.list([])
    )
    if not manifest.exists() or manifest.stat().st_mtime < newest:
        call_command("collectstatic", interactive=False, verbosity=0)


@pytest.fixture(scope="session")
def live_server(request, collected_static):
    """pytest-django's live server, with static files served by whitenoise as in production (hashed, gzipped,
    cached) instead of Django's development handler, which knows no hashed name."""
    import os

    from pytest_django.live_server_helper import LiveServer

    addr = request.config.getvalue("liveserver") or os.getenv("DJANGO_LIVE_TEST_SERVER_ADDRESS") or "localhost"
    server = LiveServer(addr, start=False)
    server.thread.static_handler = lambda application: application  # WhiteNoiseMiddleware answers /static/
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def fresh_local_counters():
    """Per-process throttle counts (the ``local`` cache) start from zero in every test."""
    from django.core.cache import caches

    caches["local"].clear()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def isolated_storage(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return Path(settings.MEDIA_ROOT)


def stored_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


# --- personas ------------------------------------------------------------------------------------


def _user(django_user_model, name):
    return django_user_model.objects.create_user(username=name, password=PASSWORD)


@pytest.fixture
def owner(django_user_model):
    return _user(django_user_model, "olivia-owner")


@pytest.fixture
def teammate(django_user_model):
    return _user(django_user_model, "dev-dan")


@pytest.fixture
def approver(django_user_model):
    return _user(django_user_model, "amy-approver")


@pytest.fixture
def viewer(django_user_model):
    return _user(django_user_model, "vic-viewer")


@pytest.fixture
def outsider(django_user_model):
    return _user(django_user_model, "oscar-outsider")


@pytest.fixture
def project(owner, teammate, approver, viewer):
    project = project_services.create_project(slug="kiosk", name="Kiosk app", owner=owner)
    project_services.set_member(project=project, user=teammate, role=roles.DEVELOPER)
    project_services.set_member(project=project, user=approver, role=roles.APPROVER)
    project_services.set_member(project=project, user=viewer, role=roles.VIEWER)
    return project


@pytest.fixture
def other_project(outsider):
    return project_services.create_project(slug="other", name="Someone else's app", owner=outsider)


@pytest.fixture
def model(project, owner):
    return catalog_services.create_model(project=project, name="digit-classifier", user=owner)


def project_device_type(project, slug: str, **fields):
    """A device type of ``project``'s own: a small ARM board on onnxruntime 1.17 unless ``fields`` say otherwise."""
    from devices.models import DeviceType

    values = {
        "name": slug,
        "memory_mb": 1024,
        "storage_mb": 1024,
        "max_model_mb": 50,
        "runtime_version": "1.17",
        "precisions": ["fp32"],
        **fields,
    }
    return DeviceType.objects.create(project=project, slug=slug, **values)


def api_client_for(user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user)
    return client


# --- model files ---------------------------------------------------------------------------------


def make_mlp(seed: int = 0, hidden: int = 16, opset: int = 17) -> onnx.ModelProto:
    """A small float32 MLP: x [N, 8] -> y [N, 4] (4 classes)."""
    return reference_models.mlp([8, hidden, 4], seed=seed, opset=opset)


@pytest.fixture
def mlp_bytes() -> bytes:
    return make_mlp().SerializeToString()


@pytest.fixture
def mlp_path(tmp_path, mlp_bytes) -> Path:
    path = tmp_path / "mlp.onnx"
    path.write_bytes(mlp_bytes)
    return path


@pytest.fixture(scope="session")
def digits_demo(tmp_path_factory):
    """The demo digits classifier trained once per run, with its held-out set."""
    from jobs.tooling.demo_models import write_digits_demo

    return write_digits_demo(tmp_path_factory.mktemp("digits"))
