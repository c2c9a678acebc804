"""`gangd watch`: the station view in a terminal, live from a running gangd.

A row per port (label, state, progress bar, step, elapsed time, last result, counts), the station's
totals above and the ports that need a person below, with their instruction. It follows gangd's
live stream (`/api/events`, the page's own), so it is as current as the station page and costs
gangd nothing while nothing changes; `q` (or Ctrl-C) quits and gives the terminal back as it was.
Plain ANSI through rich: works over SSH and fits 80 columns. Not on a terminal (or with `--once`)
it prints one frame and exits.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import select
import sys
import termios
import threading
import time
import tty

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from gangd.config.address import DEFAULT_ADDRESS, parse_address

RECONNECT_S = 1.0  # never faster than once a second
STYLES = {
    "idle": "grey62",
    "programming": "bold bright_white on blue",
    "recovering": "bold black on yellow",
    "waiting-replug": "bold bright_white on magenta",
    "queued": "bold black on cyan",
    "success": "bold bright_white on green",
    "failed": "bold bright_white on red",
    "removed": "bold black on grey62",
    "stopped": "bold black on grey62",
    "suspect": "bold black on bright_yellow",
    "disabled": "bold white on grey30",
}
NAMES = {
    "idle": "empty",
    "programming": "programming",
    "recovering": "recovering",
    "waiting-replug": "reconnecting",
    "queued": "queued (USB bandwidth)",
    "success": "programmed",
    "failed": "FAILED",
    "removed": "removed",
    "stopped": "stopped",
    "suspect": "SUSPECT",
    "disabled": "disabled",
}
RUNNING = ("queued", "programming", "recovering", "waiting-replug")
LAST = {"success": "✔ ok", "failed": "✘ fail", "removed": "⇡ out", "stopped": "■ stop", "interrupted": "■ stop"}


def add_parser(subparsers) -> None:
    watch = subparsers.add_parser("watch", help="the station view in a terminal, live from a running gangd")
    watch.add_argument(
        "--address", default=DEFAULT_ADDRESS, metavar="HOST:PORT", help=f"gangd's HTTP address ({DEFAULT_ADDRESS})"
    )
    watch.add_argument("--once", action="store_true", help="print one frame and exit (also when not on a terminal)")
    watch.set_defaults(func=watch_command)


def duration(seconds: float | None, tenths: bool = False) -> str:
    """Whole seconds, minutes, hours; a port's time to 0.1 s under a minute (`tenths`): boards
    take about 0.7 s, and "0 s" would not be true."""
    if seconds is None:
        return ""
    if tenths and seconds < 59.95:
        return f"{max(0.0, seconds):.1f} s"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60}:{s % 60:02d}"
    return f"{s // 3600} h {s % 3600 // 60:02d}"


def bar(fraction: float, width: int = 10) -> Text:
    filled = round(max(0.0, min(1.0, fraction)) * width)
    text = Text("█" * filled, style="bright_white")
    text.append("░" * (width - filled), style="grey39")
    text.append(f" {fraction:>4.0%}")
    return text


def render(snapshot: dict | None, age_s: float, address: str, problem: str | None, width: int) -> Group:
    parts = []
    if snapshot is None:
        parts.append(Text(f"gangd watch: waiting for gangd at {address}", style="bold"))
    else:
        h = snapshot["header"]
        yield_ = "–" if h["yield"] is None else f"{h['yield']:.1%}"
        head = Text("gangd ", style="bold")
        head.append(h["recipe"]["family"] + "  ", style="grey62")
        head.append(f"✔ {h['programmed']} ", style="bold green")
        head.append(f"✘ {h['failed']} ", style="bold red")
        head.append(
            f" yield {yield_}  {h['boards_per_hour']:.0f}/h  recovered {h['recovered']}  "
            f"up {duration(h['uptime_s'] + age_s)}"
        )
        if h.get("stopping"):
            head.append("  STOPPING", style="bold yellow")
        parts.append(head)
        narrow = width < 100
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, expand=False, padding=(0, 1), show_edge=False)
        table.add_column("PORT", no_wrap=True, style="bold")
        table.add_column("STATE", no_wrap=True, min_width=12)
        table.add_column("PROGRESS", no_wrap=True)
        table.add_column("STEP", no_wrap=True, max_width=12 if narrow else 18, overflow="ellipsis")
        table.add_column("TIME", no_wrap=True, justify="right")
        table.add_column("LAST", no_wrap=True)
        table.add_column("OK", justify="right", no_wrap=True)
        table.add_column("FAIL", justify="right", no_wrap=True)
        by_path = {p["port"]: p for p in snapshot["ports"]}
        order = [path for row in snapshot["layout"] for path in row if path in by_path]
        for path in order:
            p = by_path[path]
            state = p["state"]
            elapsed = p["elapsed_s"]
            if elapsed is not None and state in RUNNING:
                elapsed += age_s
            step = p["step"] or ""
            if step and p["attempt"] and p["attempt"] > 1:
                step += f" #{p['attempt']}"
            last = p["last_result"]
            last_text = Text(
                LAST.get(last, last) if last else "", style={"success": "green", "failed": "red"}.get(last or "", "")
            )
            progress = bar(p["progress"], 8 if narrow else 14)
            table.add_row(
                p["label"],
                Text(f" {NAMES.get(state, state)} ", style=STYLES.get(state, "")),
                progress,
                step,
                duration(elapsed, tenths=True),
                last_text,
                str(p["counts"].get("success", 0)),
                str(p["counts"].get("failed", 0)),
            )
        parts.append(table)  # type: ignore[arg-type]  # rich renders Text and Table alike
        attention = [
            by_path[path] for path in order if by_path[path]["state"] in ("failed", "suspect", "disabled", "stopped")
        ]
        for p in attention:
            line = Text(f"{p['label']}: ", style="bold")
            line.append(p["instruction"], style="bold yellow" if p["state"] != "disabled" else "grey62")
            if p["state"] == "failed" and p["reason"]:
                line.append(f"  ({p['reason']})", style="grey62")
            line.truncate(max(20, width - 1), overflow="ellipsis")
            parts.append(line)
    footer = Text("q quits", style="grey62")
    if snapshot is not None and snapshot["header"].get("url"):
        footer.append(f" · station page {snapshot['header']['url']}", style="grey62")
    if problem:
        footer.append(f" · {problem}", style="bold red")
    parts.append(footer)
    return Group(*parts)


class Feed(threading.Thread):
    """Follows gangd's live stream in the background; the latest snapshot wins."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(name="gangd-watch-feed", daemon=True)
        self.host, self.port = host, port
        self.snapshot: dict | None = None
        self.received = time.monotonic()
        self.problem: str | None = None
        self.changed = threading.Event()
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self._follow()
            except (OSError, http.client.HTTPException, ValueError) as exc:
                self.problem = f"gangd at {self.host}:{self.port} not reachable ({exc.__class__.__name__}): retrying"
                self.changed.set()
            self.stopped.wait(RECONNECT_S)

    def _follow(self) -> None:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)  # gangd says something every 15 s
        try:
            connection.request("GET", "/api/events", headers={"Accept": "text/event-stream"})
            response = connection.getresponse()
            if response.status != 200:
                raise ValueError(f"HTTP {response.status}")
            kind, data = None, []
            while not self.stopped.is_set():
                raw = response.fp.readline()
                if not raw:
                    raise ConnectionError("stream ended")
                line = raw.decode().rstrip("\r\n")
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip())
                elif not line:
                    if kind == "station" and data:
                        self.snapshot = json.loads("\n".join(data))
                        self.received = time.monotonic()
                        self.problem = None
                        self.changed.set()
                    kind, data = None, []
        finally:
            connection.close()


def _fetch_once(host: str, port: int) -> dict:
    connection = http.client.HTTPConnection(host, port, timeout=5)
    try:
        connection.request("GET", "/api/view")
        response = connection.getresponse()
        if response.status != 200:
            raise ValueError(f"HTTP {response.status}")
        return json.loads(response.read())
    finally:
        connection.close()


def watch_command(args: argparse.Namespace) -> int:
    try:
        host, port = parse_address(args.address)
    except ValueError as exc:
        print(f"gangd watch: --address {exc}", file=sys.stderr)
        return 2
    console = Console()
    if args.once or not (sys.stdin.isatty() and sys.stdout.isatty()):
        try:
            snapshot = _fetch_once(host, port)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            print(f"gangd watch: cannot read http://{args.address}/api/view: {exc}", file=sys.stderr)
            return 2
        console.print(render(snapshot, 0.0, args.address, None, console.width))
        return 0
    feed = Feed(host, port)
    feed.start()
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)  # keys one at a time, no echo; Ctrl-C still interrupts
        with Live(console=console, screen=True, auto_refresh=False, transient=True) as live:
            next_tick = 0.0
            while True:
                now = time.monotonic()
                if feed.changed.is_set() or now >= next_tick:
                    feed.changed.clear()
                    age = now - feed.received if feed.snapshot is not None else 0.0
                    live.update(render(feed.snapshot, age, args.address, feed.problem, console.width), refresh=True)
                    next_tick = now + 1.0  # elapsed times tick once a second
                ready, _, _ = select.select([fd], [], [], 0.1)
                if ready:
                    key = os.read(fd, 32)
                    if b"q" in key.lower():
                        break
    except KeyboardInterrupt:
        pass
    finally:
        feed.stopped.set()
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
    return 0
