"""The daemon: the serve loop and the composition root of a station on real boards.

`serve` runs a station, its HTTP server and sd_notify until SIGINT/SIGTERM (SIGHUP reloads the
configuration); `run_hardware` wires a station to udev, the sysfs port power, the records, the
metrics and the station page. The simulated line is wired in `simulated.py`, the only product
module that imports the simulator. See ARCHITECTURE.md.
"""

from __future__ import annotations

import argparse
import signal
from collections.abc import Callable
from pathlib import Path

import structlog
import trio

from gangd.config.loader import Config, ConfigError, default_station_name, load_config
from gangd.config.recipe import Recipe, with_trace_dir
from gangd.core.station import Station
from gangd.io.power import SysfsPortPower
from gangd.io.udev import BoardFilter, UdevSource
from gangd.service.http import HttpServer
from gangd.service.line import LineDatabase, LineState, Outbox
from gangd.service.metrics import Metrics
from gangd.service.notify import Notifier
from gangd.service.records import RecordStore
from gangd.service.view import StationView

log = structlog.get_logger("gangd")


async def serve(
    station: Station,
    source,
    stop_grace_s: float,
    server: HttpServer | None = None,
    reload: Callable[[], Recipe] | None = None,
    notifier: Notifier | None = None,
    outbox: Outbox | None = None,
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
            if outbox is not None:
                station.line = outbox.state
                station.listeners.append(outbox.wake)
                await nursery.start(outbox.run)
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
                if outbox is not None:  # the last records to the line now, not at the next start
                    with trio.move_on_after(5):
                        await outbox.flush()
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
        log.info(
            "configuration reloaded: new jobs use it, running jobs finish on the old one",
            images=[image.sha256 for image in recipe.images],
        )
    notifier.send(ready="1", status=station.summary())


def run_hardware(args: argparse.Namespace, config: Config, sock) -> int:
    family = config.recipe.family
    store, outbox = open_records(args.state_dir, config)
    power = SysfsPortPower() if config.recipe.recovery.power_cycle else None
    metrics = Metrics()
    station = Station(
        family,
        config.recipe,
        dict(config.ports),
        records=store,
        power=power,
        metrics=metrics,
        bandwidth_budget=config.flashloaders_per_root_port,
    )
    station.name = config.station_name
    server = http_server(station, store, metrics, sock, config.layout, config.control_token)
    source = UdevSource(BoardFilter(family.rom_usb + family.flashloader_usb, config.ports)).run
    if args.sim_socket:  # the soak: boards from a simulated hub in another process
        from gangd.service.simulated import attach_sim_socket

        source = attach_sim_socket(station, args.sim_socket, config.recipe.recovery.power_cycle)
    notifier = Notifier()
    try:
        trio.run(serve, station, source, args.stop_grace, server, reloader(args.config, args.trace), notifier, outbox)
    finally:
        notifier.close()
        close_records(store)
    return 0


def http_server(station: Station, store: RecordStore, metrics: Metrics, sock, layout, token) -> HttpServer:
    from gangd.service.http import url_of
    from gangd.service.web import create_app

    view = StationView(station, layout, records=store, control=bool(token), url=url_of(sock))
    return HttpServer(create_app(view, metrics, token), sock)


def reloader(path: str, trace_dir: str | None = None) -> Callable[[], Recipe]:
    """The recipe from the file again (SIGHUP); `gangd run --trace DIR` outlives the reload."""
    if trace_dir:
        return lambda: with_trace_dir(load_config(path).recipe, trace_dir)
    return lambda: load_config(path).recipe


def open_records(state_dir: str, config: Config | None = None) -> tuple[RecordStore, Outbox | None]:
    """The station's records (and, with `[line]`, the line database and the outbox to it). The
    station's name goes on every log line from here on."""
    station = config.station_name if config else default_station_name()  # --simulate: as on hardware
    if station:
        structlog.contextvars.bind_contextvars(station=station)
    line = None
    if config is not None and config.line is not None and station:
        line = LineDatabase(config.line, station)
    store = RecordStore(Path(state_dir) / "records.sqlite", station=station, line=line)
    interrupted = store.mark_interrupted()
    if interrupted:
        log.warning("jobs from a previous run were interrupted", count=interrupted)
    return store, None if line is None else Outbox(store, line, LineState())


def close_records(store: RecordStore) -> None:
    if store.line is not None:
        store.line.close()
    store.close()
