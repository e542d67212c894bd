"""Errors the agent raises; the CLI prints their message and exits 1."""

from __future__ import annotations


class AgentError(Exception):
    """Something the user or operator must act on (not enrolled, token rejected, bad answer)."""


class TransportError(AgentError):
    """The server could not be reached or the connection broke; retrying later may work."""


class DownloadError(AgentError):
    """A package download failed; ``permanent`` when retrying the same bytes cannot help (sha256 mismatch)."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


def first_line(exc: BaseException) -> str:
    """The first line of an error's message, at most 200 characters (onnxruntime's run to pages)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    return text[:200]
