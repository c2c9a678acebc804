"""`gangd run` and `gangd scan`: the station on real udev boards, or on the simulated hub.

The code above the board source is the same in both modes: `--simulate N` only swaps udev for the
simulated hub (whose boards are reached through the same fd transport) and adds an operator who
replaces each finished board.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import structlog
import trio

from . import logs, statedir
from .config import Config, ConfigError, load_config, parse_layout_text, resolve_layout
from .family import UsbIds, family_names, isp_usb_ids
from .hotplug.sim_socket import SimSocketPower, SimSocketSource
from .hotplug.udev import BoardFilter, UdevSource
from .notify import Notifier
from .recipe import Recipe
from .http import DEFAULT_ADDRESS, AddressError, HttpServer, bind, parse_address
from .metrics import Metrics
from .power import SimPortPower, SysfsPortPower
from .recipe import builtin_rt1020
from .records import RecordStore, export
from .station import Station
from .view import StationView

log = structlog.get_logger("gangd")


def add_parsers(subparsers) -> None:
    run = subparsers.add_parser("run", help="run the station: on real boards (--config) or simulated (--simulate)")
    run.add_argument("--config", metavar="FILE", help="TOML configuration (required on hardware)")
    run.add_argument("--simulate", type=int, metavar="N",
                     help="run on a simulated hub of N ports (with --config: its recipe and ports)")  # fmt: skip
    run.add_argument("--time-scale", type=float, default=1.0, help="simulation speed (1 = real time, 0 = instant)")
    run.add_argument("--replace-delay", type=float, default=2.0, help="simulated operator's seconds to swap a board")
    run.add_argument("--fault", action="append", default=[], metavar="SPEC", help="fault on every simulated board")
    run.add_argument("--fault-share", action="append", default=[], metavar="SPEC=FRACTION",
                     help="simulation: the fault on that share of the boards, e.g. marginal-read:max-mhz=100=0.25")  # fmt: skip
    run.add_argument("--layout", metavar="ROWS",
                     help='simulation: label and arrange the ports, e.g. "A1 A2 A3 A4 / B1 B2 B3 B4"')  # fmt: skip
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--stop-grace", type=float, default=30.0, help="seconds running jobs get to stop on SIGTERM")
    run.add_argument("--log-level", default="info")
    run.add_argument("--spsdk-log-level", default="warning", help="level of spsdk's own log lines")
    run.add_argument("--boards", type=int, metavar="N", help="simulation: the operator stops after N boards")
    run.add_argument("--port-fault", action="append", default=[], metavar="PORT=SPEC",
                     help="simulation: a fault tied to a hub port (a flaky port)")  # fmt: skip
    run.add_argument("--state-dir", default=os.environ.get("STATE_DIRECTORY", "var"),
                     help="where the board records live (systemd's StateDirectory; default ./var)")  # fmt: skip
    run.add_argument("--power-cycle", action="store_true", help="simulation: allow power-cycling hub ports")
    run.add_argument("--sim-socket", metavar="PATH",
                     help="with --config: boards from a simulated hub in another process (the soak)")  # fmt: skip
    run.add_argument("--http-address", "--metrics-address", dest="metrics_address", metavar="HOST:PORT",
                     help=f"where the station page, /status and /metrics listen (default: config, else {DEFAULT_ADDRESS})")  # fmt: skip
    run.set_defaults(func=run_command)

    status = subparsers.add_parser("status", help="print each port's state from a running gangd's /status")
    status.add_argument("--address", default=DEFAULT_ADDRESS, metavar="HOST:PORT")
    status.set_defaults(func=status_command)

    records = subparsers.add_parser("records", help="list or export the board records")
    records.add_argument("--state-dir", default=os.environ.get("STATE_DIRECTORY", "var"))
    records.add_argument("--format", choices=("table", "csv", "jsonl"), default="table")
    records.add_argument("--port", help="only this port (path or label)")
    records.add_argument("--result", help="only this result (success, failed, removed, stopped, interrupted)")
    records.set_defaults(func=records_command)

    check = subparsers.add_parser("check-config", help="validate a configuration file; exit 2 on the first mistake")
    check.add_argument("file")
    check.set_defaults(func=check_config_command)

    scan = subparsers.add_parser("scan", help="list the NXP boards attached, by port")
    scan.add_argument("--family", action="append", help="only these families (default: all in spsdk's database)")
    scan.set_defaults(func=scan_command)


async def serve(
    station: Station,
    source,
    stop_grace_s: float,
    server: HttpServer | None = None,
    reload: Callable[[], Recipe] | None = None,
    notifier: Notifier | None = None,
) -> None:
    """Run until SIGINT/SIGTERM, then stop: no new jobs, running ones end within the grace time.

    SIGHUP re-reads the configuration through `reload`: new jobs use the new recipe, running jobs
    finish on the one they started with; an invalid file is logged and the old recipe stays.
    """
    notifier = notifier or Notifier({})
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(notifier.watchdog)
            if server is not None:
                await nursery.start(server.run)
            await nursery.start(station.run, source)  # returns once the coldplug scan is done
            log.info("ready", ports=len(station.ports) or "all")
            notifier.ready(station.summary())
            station.listeners.append(lambda _: notifier.status(station.summary()))
            async for signum in signals:
                if signum == signal.SIGHUP:
                    _reload(station, reload, notifier)
                    continue
                log.info("stopping", signal=signal.Signals(signum).name, grace_s=stop_grace_s)
                notifier.stopping()
                station.stop()
                with trio.move_on_after(stop_grace_s):
                    await station.wait_jobs_done()
                nursery.cancel_scope.cancel()
                break


def _reload(station: Station, reload: Callable[[], Recipe] | None, notifier: Notifier) -> None:
    if reload is None:
        log.warning("reload requested but gangd runs without a configuration file; nothing to reload")
        return
    notifier.reloading()
    try:
        recipe = reload()
    except ConfigError as exc:
        log.error("reload rejected: the running configuration stays", reason=str(exc))
    else:
        station.recipe = recipe
        station.changes.notify()
        log.info("configuration reloaded: new jobs use it, running jobs finish on the old one",
                 images=[image.sha256 for image in recipe.images])  # fmt: skip
    notifier.send(ready="1", status=station.summary())


def run_command(args: argparse.Namespace) -> int:
    logs.configure(args.log_level, spsdk_level=args.spsdk_log_level)
    config = None
    try:
        if args.config:
            config = load_config(args.config)
        if args.simulate is None and config is None:
            raise ConfigError("run needs --config FILE (or --simulate N)")
        if args.simulate is None and (args.fault_share or args.layout):
            raise ValueError("--fault-share and --layout are for simulated boards (--simulate N)")
        share = fault_shares(args.fault_share)
        layout_rows = parse_layout_text(args.layout) if args.layout else None
    except (ConfigError, ValueError) as exc:
        print(f"gangd: {exc}", file=sys.stderr)
        return 2
    # The environment, before anything starts: one line naming the problem and the setting.
    address = args.metrics_address or (config.http_address if config else DEFAULT_ADDRESS)
    setting = "--http-address" if args.metrics_address or config is None else f"[http] address in {config.path}"
    lock = None
    try:
        lock = statedir.hold(args.state_dir, "--state-dir" + (" (StateDirectory=)" if "STATE_DIRECTORY" in os.environ else ""))
        sock = bind(address, setting)
    except (statedir.StateDirError, AddressError) as exc:
        if lock is not None:
            os.close(lock)
        print(f"gangd: {exc}", file=sys.stderr)
        return 2
    try:
        if args.simulate is not None:
            return _run_simulated(args, config, sock, share, layout_rows)
        return _run_hardware(args, config, sock)
    finally:
        sock.close()
        os.close(lock)


def fault_shares(items: list[str]) -> list[tuple[str, float]]:
    """`--fault-share SPEC=FRACTION` (the fraction after the last '=') as checked (spec, fraction)."""
    from .sim.faults import FaultSpecError, parse_fault

    shares = []
    for item in items:
        spec, sep, fraction = item.rpartition("=")
        try:
            value = float(fraction)
        except ValueError:
            value = -1.0
        if not sep or not spec or not 0.0 <= value <= 1.0:
            raise ValueError(f"--fault-share {item!r}: expected SPEC=FRACTION with a fraction from 0 to 1")
        try:
            parse_fault(spec)
        except FaultSpecError as exc:
            raise ValueError(f"--fault-share {item!r}: {exc}") from None
        shares.append((spec, value))
    return shares


def _board_faults(always: tuple[str, ...], shares: list[tuple[str, float]], seed: int):
    """Each simulated board's faults: every --fault, and each shared fault drawn for that board
    from a generator seeded by (seed, board number), so a run is repeatable."""
    import random

    def faults(n: int) -> tuple[str, ...]:
        rng = random.Random(seed * 7_919 + n)
        return always + tuple(spec for spec, fraction in shares if rng.random() < fraction)

    return faults if shares else always


def _run_hardware(args: argparse.Namespace, config: Config, sock) -> int:
    family = config.recipe.family
    store = open_records(args.state_dir)
    power = SysfsPortPower() if config.recipe.recovery.power_cycle else None
    metrics = Metrics()
    station = Station(family, config.recipe, config.ports, records=store, power=power, metrics=metrics)
    server = _http_server(station, store, metrics, sock, config.layout, config.control_token)
    source = UdevSource(BoardFilter(family.rom_usb + family.flashloader_usb, config.ports)).run
    if args.sim_socket:
        remote = SimSocketSource(args.sim_socket)
        source = remote.run
        station.power = SimSocketPower(remote) if config.recipe.recovery.power_cycle else None
        station.listeners.append(lambda result: remote.finished(result.port, result.result))
    notifier = Notifier()
    try:
        trio.run(serve, station, source, args.stop_grace, server, _reloader(args.config), notifier)
    finally:
        notifier.close()
        store.close()
    return 0


def _http_server(station: Station, store: RecordStore, metrics: Metrics, sock, layout, token) -> HttpServer:
    from .http import url_of
    from .web import create_app

    view = StationView(station, layout, records=store, control=bool(token), url=url_of(sock))
    return HttpServer(create_app(view, metrics, token), sock)


def _reloader(path: str) -> Callable[[], Recipe]:
    return lambda: load_config(path).recipe


def _run_simulated(args: argparse.Namespace, config: Config | None, sock, shares, layout_rows) -> int:
    """The same station on the simulated hub. With --config, the recipe (and the port paths) come
    from the file: a line engineer's dry run of a new recipe before it meets hardware."""
    from .hotplug.sim_source import SimHubSource
    from .sim import BoardFactory, Operator, SimHub, TimingModel
    from .sim.hub import default_port_paths
    from .sim.images import build_flashloader_image

    layout = config.layout if config else None
    if config is not None:
        recipe = config.recipe
        paths = list(config.ports) or default_port_paths(args.simulate)
        labels = {path: config.ports.get(path) for path in paths}
    else:
        flashloader, jump = build_flashloader_image()
        recipe = builtin_rt1020(os.urandom(45056), flashloader, jump)  # the user's image size
        labels = {path: None for path in default_port_paths(args.simulate)}
    if layout_rows is not None:
        names = [name for row in layout_rows for name in row if name != "."]
        if config is None:  # the layout names the simulated ports, in port order
            if len(names) != len(labels):
                print(f"gangd: --layout names {len(names)} ports, --simulate has {len(labels)}", file=sys.stderr)
                return 2
            labels = dict(zip(labels, names))
        try:
            layout = resolve_layout(layout_rows, {path: label or path for path, label in labels.items()})
        except ValueError as exc:
            print(f"gangd: --layout: {exc}", file=sys.stderr)
            return 2
    if args.power_cycle:
        recipe = dataclasses.replace(recipe, recovery=dataclasses.replace(recipe.recovery, power_cycle=True))
    port_faults: dict[str, list[str]] = {}
    for item in args.port_fault:
        port, _, spec = item.partition("=")
        port_faults.setdefault(port, []).append(spec)
    store = open_records(args.state_dir)
    metrics = Metrics()
    notifier = Notifier()
    with SimHub(list(labels), seed=args.seed, port_faults=port_faults) as hub:
        station = Station(recipe.family, recipe, labels, records=store, power=SimPortPower(hub), metrics=metrics)
        server = _http_server(station, store, metrics, sock, layout, config.control_token if config else None)
        timing = TimingModel(time_scale=args.time_scale)
        faults = _board_faults(tuple(args.fault), shares, args.seed)
        factory = BoardFactory(recipe.family, timing, seed=args.seed, faults=faults)
        operator = Operator(hub, factory, delay_s=args.replace_delay * max(args.time_scale, 0.0), limit=args.boards)
        station.listeners.append(lambda result: operator.finished(result.port))
        operator.populate()
        reload = _reloader(args.config) if args.config else None
        try:
            trio.run(serve, station, SimHubSource(hub).run, args.stop_grace, server, reload, notifier)
        finally:
            operator.stop()
            notifier.close()
            store.close()
    print(f"gangd: {station.jobs_finished} boards, {station.counts['success']} programmed", file=sys.stderr)
    return 0


def open_records(state_dir: str) -> RecordStore:
    store = RecordStore(Path(state_dir) / "records.sqlite")
    interrupted = store.mark_interrupted()
    if interrupted:
        log.warning("jobs from a previous run were interrupted", count=interrupted)
    return store


def status_command(args: argparse.Namespace) -> int:
    import json
    import urllib.request

    try:
        host, port = parse_address(args.address)
        with urllib.request.urlopen(f"http://{host}:{port}/status", timeout=5) as response:
            status = json.load(response)
    except (OSError, ValueError) as exc:
        print(f"gangd status: cannot read http://{args.address}/status: {exc}", file=sys.stderr)
        return 2
    print(f"gangd {status['version']}, up {status['uptime_s']:.0f} s{' (stopping)' if status['stopping'] else ''}")
    print(f"{'PORT':<10} {'LABEL':<8} {'STATE':<15} {'STEP':<17} {'PROGRESS':>8}  {'LAST':<9} {'OK':>5} {'FAIL':>5}")
    for p in status["ports"]:
        counts = p["counts"]
        print(f"{p['port']:<10} {p['label']:<8} {p['state']:<15} {(p['step'] or ''):<17} {p['progress']:>8.0%}  "
              f"{(p['last_result'] or ''):<9} {counts.get('success', 0):>5} {counts.get('failed', 0):>5}")  # fmt: skip
    return 0


def records_command(args: argparse.Namespace) -> int:
    path = Path(args.state_dir) / "records.sqlite"
    if not path.exists():
        print(f"gangd records: no records at {path}", file=sys.stderr)
        return 2
    store = RecordStore(path)
    rows = store.jobs(port=args.port, result=args.result)
    store.close()
    if args.format != "table":
        sys.stdout.write(export(rows, args.format))
        return 0
    # MHZ: the flash read clock the board was programmed at; "*" marks a marginal board (below the recipe's).
    print(f"{'ID':>5} {'PORT':<10} {'LABEL':<6} {'BOARD':<17} {'RESULT':<11} {'STEP':<16} {'TRIES':>5} {'MHZ':>4}  REASON")
    for row in rows:
        clock = f"{row['flash_clock_mhz']}{'*' if row['marginal'] else ''}" if row["flash_clock_mhz"] else ""
        print(f"{row['id']:>5} {row['port']:<10} {row['label']:<6} {(row['board_id'] or row['serial'] or ''):<17} "
              f"{row['result']:<11} {(row['step'] or ''):<16} {len(row['attempts']):>5} {clock:>4}  {row['reason'] or ''}")  # fmt: skip
    return 0


def check_config_command(args: argparse.Namespace) -> int:
    logs.configure("warning", stream=sys.stderr)  # spsdk's database chatter stays out of the report
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        print(f"gangd: {exc}", file=sys.stderr)
        return 2
    recipe = config.recipe
    print(f"{config.path}: ok")
    print(f"  family      {recipe.family.name}")
    ports = ", ".join(f"{p}={label}" for p, label in config.ports.items()) or "every port"
    print(f"  ports       {ports}")
    print(f"  flashloader {len(recipe.flashloader)} bytes at 0x{recipe.flashloader_address:08x}, jump 0x{recipe.jump_address:08x}")
    print(f"  memory      id {recipe.memory_id}, options {', '.join(f'0x{w:08x}' for w in recipe.option_words)} at 0x{recipe.option_address:08x}")
    for image in recipe.images:
        print(f"  image       {len(image.data)} bytes at 0x{image.address:08x} sha256 {image.sha256}")
    print(f"  verify      {'read-back' if recipe.verify else 'off'}; final action {recipe.final_action}; "
          f"marginal boards {recipe.quality_marginal}")  # fmt: skip
    print(f"  fuses       policy {recipe.fuses.policy}, {len(recipe.fuses.words)} words")
    return 0


def scan_command(args: argparse.Namespace) -> int:
    names = args.family or family_names()
    try:
        known = {name: isp_usb_ids(name) for name in names}
    except Exception as exc:  # noqa: BLE001 - spsdk raises several types for an unknown name
        print(f"gangd scan: {exc}", file=sys.stderr)
        return 2
    all_ids = {ids for rom, loader in known.values() for ids in rom + loader}
    events = UdevSource(BoardFilter(all_ids)).coldplug()
    if not events:
        print("no NXP boards attached")
        return 0
    print(f"{'PORT':<12} {'IDS':<10} {'STAGE':<12} {'FAMILIES':<30} {'DEVNODE':<16} SERIAL")
    for event in sorted(events, key=lambda e: e.port):
        ids = UsbIds(event.vid, event.pid)
        roms = [n for n, (rom, _) in known.items() if ids in rom]
        loaders = [n for n, (_, loader) in known.items() if ids in loader]
        stage, matching = ("flashloader", loaders) if loaders else ("rom", roms)
        names = ",".join(matching[:3]) + (f" +{len(matching) - 3}" if len(matching) > 3 else "")
        print(f"{event.port:<12} {event.ids:<10} {stage:<12} {names:<30} {event.devnode or '':<16} {event.serial or ''}")
    return 0
