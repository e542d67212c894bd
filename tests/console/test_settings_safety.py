"""Settings that are safe when nothing is set, and refuse to start when an unsafe combination is asked for."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from console.settings import unsafe_configuration

ROOT = Path(__file__).resolve().parents[2]
GOOD_KEY = "k" * 20 + "0123456789abcdefghijklmnopqrstuvwxyz"


def test_nothing_set__is_safe():
    assert unsafe_configuration({}) == []


def test_laptop_demo_of_make_run__is_safe():
    assert unsafe_configuration({"CONSOLE_DEMO": "1", "DEBUG": "1", "ALLOWED_HOSTS": "127.0.0.1,localhost"}) == []


@pytest.mark.parametrize("hosts", ["console.example.com", "127.0.0.1,10.0.0.5", "*"])
def test_debug_on_a_host_others_reach__is_refused(hosts):
    problems = unsafe_configuration({"DEBUG": "true", "ALLOWED_HOSTS": hosts, "SECRET_KEY": GOOD_KEY})
    assert len(problems) == 1 and problems[0].startswith("DEBUG is on while ALLOWED_HOSTS names")


@pytest.mark.parametrize("hosts", ["127.0.0.1,localhost,[::1],::1", "testserver", "console.localhost"])
def test_debug_on_loopback_hosts__is_allowed(hosts):
    assert unsafe_configuration({"DEBUG": "on", "ALLOWED_HOSTS": hosts}) == []


@pytest.mark.parametrize("key, word", [("", "not set"), ("short-key", "weak"), ("django-insecure-" + "x" * 60, "weak")])
def test_host_others_reach_without_a_strong_secret_key__is_refused(key, word):
    problems = unsafe_configuration({"ALLOWED_HOSTS": "console.example.com", "SECRET_KEY": key})
    assert problems == [problems[0]] and f"SECRET_KEY is {word}" in problems[0]


def test_deployment_with_its_own_key_and_debug_off__is_safe():
    assert unsafe_configuration({"ALLOWED_HOSTS": "console.example.com", "SECRET_KEY": GOOD_KEY, "DEBUG": "0"}) == []


def test_demo_users_on_a_host_others_reach_with_the_readme_password__are_refused():
    env = {"ALLOWED_HOSTS": "demo.example.com", "SECRET_KEY": GOOD_KEY, "CONSOLE_DEMO": "1"}
    assert "DEMO_PASSWORD" in unsafe_configuration(env)[0]
    assert unsafe_configuration({**env, "DEMO_PASSWORD": "demo-pass-2026"}) != []
    assert unsafe_configuration({**env, "DEMO_PASSWORD": "a-password-of-our-own"}) == []


def _start(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DEBUG", "ALLOWED_HOSTS", "SECRET_KEY", "CONSOLE_DEMO", "DEMO_PASSWORD")
    }
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; "
            "print('DEBUG', settings.DEBUG, 'DEMO', settings.CONSOLE_DEMO)",
        ],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "console.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_start_up__with_nothing_set__has_debug_and_demo_users_off():
    started = _start({})
    assert started.returncode == 0, started.stderr
    assert "DEBUG False DEMO False" in started.stdout


def test_start_up__debug_on_a_public_host__stops_with_a_message_that_says_what_to_change():
    started = _start({"DEBUG": "1", "ALLOWED_HOSTS": "console.example.com"})
    assert started.returncode != 0
    assert "ImproperlyConfigured: unsafe settings, refusing to start" in started.stderr
    assert "DEBUG is on while ALLOWED_HOSTS names console.example.com" in started.stderr
    assert "SECRET_KEY is not set" in started.stderr


def test_static_files__are_served_with_debug_off(client, settings):
    assert settings.DEBUG is False
    response = client.get("/static/css/console.css")
    assert response.status_code == 200
    assert b"--accent" in b"".join(response.streaming_content)
