"""The agent's side of a rollout's retry: a new retry generation from the server clears the back-off once."""

from __future__ import annotations

from devices.agent.store import ModelStore

SHA = "a" * 64


def test_new_retry_generation__clears_the_back_off_once(tmp_path):
    store = ModelStore(tmp_path)
    store.block("m", SHA, "sha256 mismatch", base_delay_s=60, now=1000.0)
    assert store.blocked_reason("m", SHA, now=1001.0) == "sha256 mismatch"

    assert store.accept_retry("m", 1) is True
    assert store.blocked_reason("m", SHA, now=1001.0) is None

    store.block("m", SHA, "failed again", base_delay_s=60, now=1002.0)
    assert store.accept_retry("m", 1) is False  # the same retry, seen again on the next answer: the block stays
    assert store.blocked_reason("m", SHA, now=1003.0) == "failed again"
    assert store.accept_retry("m", 2) is True and store.blocked_reason("m", SHA, now=1003.0) is None
