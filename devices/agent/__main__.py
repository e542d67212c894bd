"""``python -m devices.agent``: the same as the ``model-agent`` console script."""

from __future__ import annotations

import sys

from devices.agent.cli import main

sys.exit(main())
