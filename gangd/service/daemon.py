"""The daemon: one way to run a station on any world (`world.py`).

`run_world` composes the station with its records, metrics, station page and sd_notify; `serve`
runs it until SIGINT/SIGTERM (SIGHUP reloads the configuration). The worlds are made in
`hardware.py` (udev, sysfs) and `simulated.py` (the simulator, the only product module that
imports it); neither imports the other. See ARCHITECTURE.md.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import structlog
import trio

from gangd.config.loader import Config, ConfigError, default_station_name, load_config
from gangd.config.recipe import Recipe, with_trace_dir
from gangd.core.bus import DEFAULT_BUDGET
from gangd.core.errors import JournalUnwritable
from gangd.service import collector
from gangd.service.http import HttpServer
from gangd.service.journal import JournalKeeper
from gangd.service.line import LineDatabase, LineState, Outbox
from gangd.service.metrics import Metrics
from gangd.service.notify import Notifier
from gangd.service.records import RecordStore
from gangd.service.view import StationView
from gangd.service.worker import command as worker_command
from gangd.service.world import DaemonOptions, World
from gangd.station.station import Station
from gangd.station.workers import WorkerPool

log = structlog.get_logger("gangd")


async def serve(
    station: Station,
    source,
    stop_grace_s: float,
    server: HttpServer | None = None,
    reload: Callable[[], Recipe] | None = None,
    notifier: Notifier | None = None,
    outbox: Outbox | None = None,
    keeper: JournalKeeper | None = None,
) -> None:
    """Run until SIGINT/SIGTERM, then stop: no new jobs, running ones end within the grace time.

    SIGHUP re-reads the configuration through `reload`: new jobs use the new recipe, running jobs
    finish on the one they started with; an invalid file is logged and the old recipe stays.
    """
    notifier = notifier or Notifier({})
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(notifier.watchdog)
            if keeper is not None:
                await nursery.start(keeper.run)
            if server is not None:
                await nursery.start(server.run)
            if outbox is not None:
                station.listeners.append(outbox.wake)
                await nursery.start(outbox.run)
            collector.settle()  # the jobs' short-lived garbage collected less often (collector.py)
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


def run_world(world: World, options: DaemonOptions, sock) -> Station:
    """Run a station on `world` until SIGINT/SIGTERM: its records (and the line's outbox), the
    metrics, the station page on `sock`, sd_notify. The station is complete when constructed."""
    config = world.config
    store, outbox = open_records(options.state_dir, config)
    metrics = Metrics()
    keeper = JournalKeeper(store, metrics)
    station_name = config.station_name if config else default_station_name()  # --simulate: as on hardware
    station = Station(
        world.recipe.family,
        world.recipe,
        world.ports,
        records=store,
        power=world.power,
        metrics=metrics,
        bandwidth_budget=config.flashloaders_per_root_port if config else DEFAULT_BUDGET,
        name=station_name,
        line=outbox.state if outbox is not None else None,
        workers=worker_pool(options, config, station_name),
        journal=keeper,
        controllers=world.controllers,
    )
    station.listeners.extend(world.listeners)
    server = http_server(station, store, metrics, sock, world.layout, config.control_token if config else None)
    reload = reloader(options.config_path, options.trace_dir) if options.config_path else None
    notifier = Notifier()
    try:
        trio.run(serve, station, world.source, options.stop_grace_s, server, reload, notifier, outbox, keeper)
    finally:
        world.close()
        notifier.close()
        close_records(store)
    return station


def worker_pool(options: DaemonOptions, config: Config | None, station_name: str) -> WorkerPool | None:
    """The worker processes for the boards' jobs (`--workers`, else [station] workers), or None."""
    count = options.workers if options.workers is not None else (config.workers if config else 0)
    if not count:
        return None
    log.info("jobs run in worker processes", workers=count)
    return WorkerPool(count, worker_command(options.log_level, options.spsdk_log_level, station_name))


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
    try:
        interrupted = store.mark_interrupted()
    except JournalUnwritable as exc:  # owed: the journal keeper marks them once it can write
        log.error("journal cannot be written at start: no job starts until it can", reason=str(exc))
        interrupted = 0
    if interrupted:
        log.warning("jobs from a previous run were interrupted", count=interrupted)
    return store, None if line is None else Outbox(store, line, LineState())


def close_records(store: RecordStore) -> None:
    """The last chance for held completions; what the journal still refuses goes to the log, one
    line per record with every field, so that no programmed board's record is lost."""
    if store.held and not store.recover():
        for record_id, fields in sorted(store.held.items()):
            log.critical("record not written to the journal", record=record_id, journal=store.fault, fields=fields)
    if store.line is not None:
        store.line.close()
    store.close()
