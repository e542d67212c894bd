"""Roles and what each may do: the one place these business rules live."""

from __future__ import annotations

OWNER = "owner"
DEVELOPER = "developer"
APPROVER = "approver"
VIEWER = "viewer"
ROLE_CHOICES = [(OWNER, "Owner"), (DEVELOPER, "Developer"), (APPROVER, "Approver"), (VIEWER, "Viewer")]

VIEW = "view"
CHANGE = "change"  # upload, create models, start jobs, edit rules
APPROVE = "approve"  # sign off rollouts
MANAGE = "manage"  # members, keys, project settings

_ALLOWED: dict[str, set[str]] = {
    OWNER: {VIEW, CHANGE, APPROVE, MANAGE},
    DEVELOPER: {VIEW, CHANGE},
    APPROVER: {VIEW, APPROVE},
    VIEWER: {VIEW},
}


def role_allows(role: str | None, action: str) -> bool:
    return role is not None and action in _ALLOWED.get(role, set())
