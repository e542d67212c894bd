"""``model-agent``: enroll, check in once, run the check-in loop, show status.

    model-agent --state-dir /var/lib/model-agent enroll --server http://127.0.0.1:8000 \\
        --key $KEY --model digit-classifier --device-type raspberry-pi-4 --region DE --app-version 2.3.1 --attr tier=pro
    model-agent --state-dir /var/lib/model-agent checkin [--app-version 2.4.0]
    model-agent --state-dir /var/lib/model-agent run [--max-cycles N]
    model-agent --state-dir /var/lib/model-agent status

Results print as JSON on stdout; errors print on stderr with exit status 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from typing import Any

from devices.agent.client import Agent, default_config
from devices.agent.errors import AgentError

DEFAULT_STATE_DIR = "~/.model-agent"
KEY_ENV = "MODEL_AGENT_ENROLLMENT_KEY"
STATE_DIR_ENV = "MODEL_AGENT_STATE_DIR"


def parse_attribute(text: str) -> tuple[str, Any]:
    """``KEY=VALUE``; the value becomes a bool (true/false), int, float or stays a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    value: Any = raw
    if raw.lower() in ("true", "false"):
        value = raw.lower() == "true"
    else:
        for convert in (int, float):
            try:
                value = convert(raw)
                break
            except ValueError:
                continue
    return key.strip(), value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="model-agent", description="Device agent of the model delivery console.")
    parser.add_argument(
        "--state-dir",
        default=os.environ.get(STATE_DIR_ENV, DEFAULT_STATE_DIR),
        help=f"where the token, installed models and pending events live (default ${STATE_DIR_ENV} or ~/.model-agent)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log each step")
    commands = parser.add_subparsers(dest="command", required=True)

    config_flags = argparse.ArgumentParser(add_help=False)
    config_flags.add_argument("--device-type")
    config_flags.add_argument("--region", help="ISO 3166 alpha-2, e.g. DE")
    config_flags.add_argument("--app-version")
    config_flags.add_argument("--os")
    config_flags.add_argument("--cpu-arch")
    config_flags.add_argument("--accelerator")
    config_flags.add_argument("--memory-mb", type=int)
    config_flags.add_argument(
        "--attr", action="append", type=parse_attribute, default=[], metavar="KEY=VALUE", help="repeatable"
    )
    config_flags.add_argument("--model", action="append", default=[], help="a model this app uses; repeatable")

    enroll = commands.add_parser("enroll", parents=[config_flags], help="enroll this device with a project")
    enroll.add_argument("--server", required=True, help="console base URL, e.g. http://127.0.0.1:8000")
    enroll.add_argument("--key", default=os.environ.get(KEY_ENV), help=f"enrollment key (default ${KEY_ENV})")
    enroll.add_argument("--device-id", help="stable id of this device (default: a new uuid4)")
    enroll.add_argument("--force", action="store_true", help="enroll again although a token is stored")

    commands.add_parser("checkin", parents=[config_flags], help="check in once, install what changed")
    run = commands.add_parser("run", parents=[config_flags], help="check in on the server's interval until stopped")
    run.add_argument("--max-cycles", type=int, help="stop after this many check-ins")
    commands.add_parser("status", help="show what the agent knows (never the token)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(message)s"
    )
    try:
        agent = Agent(args.state_dir)
        result = _dispatch(agent, args)
    except AgentError as exc:
        print(f"model-agent: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    if result is not None:
        print(json.dumps(result, indent=2, sort_keys=True, default=str))
    return 0


def _dispatch(agent: Agent, args: argparse.Namespace) -> dict[str, Any] | None:
    if args.command == "status":
        return agent.status()
    flags = _config_flags(args)
    if args.command == "enroll":
        if not args.key:
            raise AgentError(f"an enrollment key is needed: --key or ${KEY_ENV}")
        if not args.model:
            raise AgentError("name at least one model this app uses: --model NAME")
        config = default_config(**flags, attributes=dict(args.attr))
        return agent.enroll(
            args.server, args.key, config, models=args.model, device_id=args.device_id, force=args.force
        )
    # checkin and run: flags change the stored configuration (e.g. after an app upgrade)
    if flags:
        agent.update_config(**flags)
    if args.attr:
        agent.set_attributes(**dict(args.attr))
    if args.model:
        agent.set_models(args.model)
    if args.command == "checkin":
        return agent.checkin().as_dict()
    stop = threading.Event()
    try:
        agent.run_forever(stop, max_cycles=args.max_cycles)
    except KeyboardInterrupt:
        stop.set()
    return None


def _config_flags(args: argparse.Namespace) -> dict[str, Any]:
    names = ("device_type", "region", "app_version", "os", "cpu_arch", "accelerator", "memory_mb")
    flags = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    if "region" in flags:
        flags["region"] = flags["region"].upper()
    return flags
