"""`gangd port disable|enable|acknowledge PORT`: the station page's port controls, from a shell.

The request goes to the running gangd's control API with the control token: from the environment
(`GANGD_CONTROL_TOKEN`) or from gangd's configuration file (`--config`, its `[http] control_token`
and address). Refused without it: control is off unless the configuration sets a token.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tomllib
import urllib.parse

from gangd.config.address import DEFAULT_ADDRESS, parse_address

ACTIONS = ("disable", "enable", "acknowledge")
TOKEN_ENV = "GANGD_CONTROL_TOKEN"


def add_parser(subparsers) -> None:
    port = subparsers.add_parser(
        "port",
        help="disable or enable a port, or acknowledge its suspect flag, on a running gangd",
        description="A disabled port starts no job; a board in it is left alone until the port is enabled. "
        f"Needs the control token: ${TOKEN_ENV}, or --config with [http] control_token.",
    )
    port.add_argument("action", choices=ACTIONS)
    port.add_argument("port", help="the port's label (A3) or USB port path (1-1.3)")
    port.add_argument(
        "--address", metavar="HOST:PORT", help=f"gangd's HTTP address (default: config, else {DEFAULT_ADDRESS})"
    )
    port.add_argument("--config", metavar="FILE", help="gangd's configuration: its [http] address and control_token")
    port.set_defaults(func=port_command)


def _from_config(path: str) -> dict:
    try:
        with open(path, "rb") as file:
            table = tomllib.load(file).get("http", {})
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    return table if isinstance(table, dict) else {}


def port_command(args: argparse.Namespace) -> int:
    try:
        settings = _from_config(args.config) if args.config else {}
        address = args.address or settings.get("address") or DEFAULT_ADDRESS
        host, port = parse_address(address)
    except ValueError as exc:
        print(f"gangd port: {exc}", file=sys.stderr)
        return 2
    token = os.environ.get(TOKEN_ENV) or settings.get("control_token")
    path = f"/api/ports/{urllib.parse.quote(args.port, safe='')}/{args.action}"
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request("POST", path, body=b"", headers={"X-Gangd-Token": token} if token else {})
        response = connection.getresponse()
        body = json.loads(response.read() or b"{}")
    except (OSError, http.client.HTTPException, ValueError) as exc:
        print(f"gangd port: cannot reach gangd at {address}: {exc}", file=sys.stderr)
        return 2
    finally:
        connection.close()
    if response.status != 200:
        hint = "" if token or response.status != 403 else f" (no token given: set ${TOKEN_ENV} or use --config)"
        reason = body.get("error", response.reason) if isinstance(body, dict) else response.reason
        print(f"gangd port: {args.action} {args.port} refused by gangd at {address}: {reason}{hint}", file=sys.stderr)
        return 2
    tile = body["port"]
    done = {"disable": "disabled", "enable": "enabled", "acknowledge": "suspect flag acknowledged"}[args.action]
    print(f"{tile['label']} ({tile['port']}): {done}; now {tile['state']}")
    return 0
