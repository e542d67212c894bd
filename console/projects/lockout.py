"""Sign-in lock-out for the developer API, on top of django-axes (AXES_HANDLER in settings).

Axes counts every failed password check, DRF's HTTP Basic included, and refuses a locked username. For a page
its middleware turns the lock into a 429 with the lock-out message; DRF, though, hands ``authenticate()`` its
own Request wrapper, so the flag never reaches the middleware and a locked caller would only see DRF's
"Invalid username/password." 401. Raising the 429 from the handler, where Axes decides the lock, lets DRF's
exception handling answer it (with Retry-After) instead.
"""

from __future__ import annotations

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_cool_off, get_lockout_message
from rest_framework.exceptions import Throttled
from rest_framework.request import Request


class SignInLockedOut(Throttled):
    default_code = "sign_in_locked_out"


class LockoutHandler(AxesDatabaseHandler):
    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs):
        super().user_login_failed(sender, credentials, request, **kwargs)
        if isinstance(request, Request) and getattr(request, "axes_locked_out", False):
            cool_off = get_cool_off(request)
            raise SignInLockedOut(wait=cool_off.total_seconds() if cool_off else None, detail=get_lockout_message())
