"""`python -m tools.soak`: a chaos soak of a whole line, with SIGKILLs, and the invariants checked.

The simulated hub (16 ports, an operator replacing boards, faults of every kind on boards and on a
flaky port) lives in this process; gangd runs as a separate process (its jobs in worker processes
with --workers, as --everything does) on the user's recipe (with an
SRK hash burned under `if-blank`, power-cycling allowed) and is killed with SIGKILL at random
moments and restarted, while the boards stay plugged in. At the end it prints:

- false successes: success records, each its board's latest, whose board's flash differs from the
  image or whose SRK fuses differ from the recipe (must be 0);
- lost records: boards whose flow the simulator saw completed without a success record, and records
  committed before a kill that were gone or changed after it (must be 0);
- metrics vs records: gangd_boards_total per port and result against the records of the final run;
- ports left stuck: ports not idle once the operator has stopped;
- boards stopped for USB bandwidth: 16 ports share one root port (or K, with half their ports'
  worth of flashloaders each), admission must keep every flashloader within its budget, whoever
  left it on the bus;
- memory growth from the first to the last 10 % of the boards of the final (kill-free) run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

from gangd.config.family import load_family
from gangd.config.loader import load_config
from gangd.engine.plan import plan, tool_lines
from gangd.service import logs
from gangd.service.records import RecordStore
from gangd.sim import BoardFactory, Operator, SimHub, TimingModel
from gangd.sim.hub import default_port_paths
from gangd.sim.remote import HubServer
from tools import resource_faults
from tools.lineconfig import free_port, write_line_config

IMAGE = bytes(range(256)) * 176  # 45,056 bytes, the user's image size
SRK = [0x5EED_0000 + n for n in range(8)]  # most significant word first
GANGD = [sys.executable, "-m", "gangd"]


MARGINAL_LIMITS_MHZ = (100, 80, 60)  # boards whose reads are reliable only up to these clocks


def board_faults(seed: int, marginal: float = 0.0, protected: float = 0.0):
    """A random mix per board: every kind the simulator has, often enough to exercise recovery.

    With `marginal`/`protected` (the mechanism variant), that share of boards carries only a flash
    mechanism instead: a marginal read path, or block protection that survives everything (and as
    many again with volatile protection, which a power cycle clears)."""

    def faults(n: int) -> tuple[str, ...]:
        rng = random.Random(seed * 7919 + n)
        mechanism = rng.random()
        if mechanism < marginal:
            return (f"marginal-read:max-mhz={rng.choice(MARGINAL_LIMITS_MHZ)}",)
        if mechanism < marginal + protected:
            return ("write-protect:persist=always",)
        if mechanism < marginal + 2 * protected:
            return ("write-protect:persist=power",)
        chosen = []
        table = [
            (0.30, "status:cmd=flash-erase-region,code=20106,p=0.5"),
            (0.08, "no-response:cmd=write-memory,nth=1"),
            (0.03, "hang:cmd=write-memory,nth=1"),
            (0.03, "disconnect:cmd=write-memory,after=16384"),
            (0.08, "corrupt-readback:nth=1"),
            (0.03, "no-reenumerate:nth=1"),
            (0.10, "slow-flash:factor=2"),
            (
                0.04,
                f"malformed:cmd=read-memory,shape={rng.choice(['truncated', 'wrong-id', 'lying-length', 'halfway'])}",
            ),
            (0.04, "status:cmd=configure-memory,code=20109,nth=1"),
        ]
        for probability, spec in table:
            if rng.random() < probability:
                chosen.append(spec)
        draw = rng.random()
        if draw < 0.04:  # already provisioned with this line's SRK hash
            chosen += [f"otp:index={24 + i},value={SRK[i]}" for i in range(8)]
        elif draw < 0.07:  # provisioned for someone else
            chosen.append("otp:index=31,value=0x80000000")
        return tuple(chosen)

    return faults


SERIAL_AT = 0x6010_0000  # where the serial-number variant writes each board's serial
SERIAL_SIZE = 16


def write_config(
    directory: Path, ports: list[str], http_port: int, scale: float, serials: bool = False, budget: int = 8
) -> Path:
    srk = "0x" + "".join(f"{w:08x}" for w in SRK)
    return write_line_config(
        directory,
        {port: f"P{n:02d}" for n, port in enumerate(ports, start=1)},
        IMAGE,
        http_address=f"127.0.0.1:{http_port}",
        fuses={"SRK_HASH": srk},
        recovery={
            "max_attempts": 3,
            "transient_retries": 2,
            "backoff_s": 0.01,
            "suspect_after": 3,
            "power_cycle": True,
        },
        # Deadlines scaled like the simulator's clock, so a hung board costs seconds, not minutes.
        deadlines={
            "load_flashloader_s": max(2.0, 30 * scale),
            "replug_s": max(1.0, 10 * scale),
            "command_s": max(1.0, 10 * scale),
            "per_byte_s": 0.00001,
            "per_erase_sector_s": 0.05,
            "reset_replug_s": max(1.0, 5 * scale),
        },
        board_data=[
            {
                "name": "serial",
                "source": "counter",
                "format": "GD{:07d}",
                "address": SERIAL_AT,
                "size": SERIAL_SIZE,
            }
        ]
        if serials
        else [],
        usb={"flashloaders_per_root_port": budget},
        name="soak.toml",
    )


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Soak:
    def __init__(self, args: argparse.Namespace, directory: Path) -> None:
        self.args = args
        self.dir = directory
        # Spread over root ports, each carries as many flashloaders as the ports it has over two:
        # 16 ports on one root port (8 flashloaders) or on two (4 each) queue for bandwidth alike.
        self.ports = default_port_paths(args.ports, args.root_ports)
        budget = max(1, -(-args.ports // args.root_ports) // 2)
        self.http_port = free_port()
        self.config = write_config(directory, self.ports, self.http_port, args.time_scale, args.serials, budget)
        self.state = directory / "state"
        self.db = self.state / "records.sqlite"
        # A bad port whose boards fail; not in the mechanism variant, whose invariant is that every
        # marginal board ends programmed (a board failed by the port would only prove the port bad).
        mechanisms = args.marginal > 0 or args.protected > 0
        flaky = {} if mechanisms else {self.ports[-1]: ["status:cmd=write-memory,code=10200,p=0.6"]}
        self.hub = SimHub(self.ports, port_faults=flaky, seed=args.seed, flashloader_budget=budget)
        family = load_family("mimxrt1020")
        self.timing = TimingModel(time_scale=args.time_scale)
        factory = BoardFactory(
            family,
            self.timing,
            seed=args.seed,
            faults=board_faults(args.seed, args.marginal, args.protected),
        )
        self.operator = Operator(
            self.hub, factory, delay_s=args.replace_delay, limit=args.boards, retest=0.5, seed=args.seed
        )
        self.finished = 0
        self.lock = threading.Condition()
        self.rss: list[tuple[int, int]] = []  # (incarnation, kB) per finished board
        self.incarnation = 0
        self.daemon: subprocess.Popen | None = None
        self.server = HubServer(self.hub, str(directory / "hub.sock"), self._finished)
        self.kill_log: list[dict] = []
        self.resource_faults = None
        if args.resource_faults:
            resource_faults.mount_state(self.state)
            self.resource_faults = resource_faults.ResourceFaults(self.state, self.http_port, directory / "faketime")

    def _finished(self, port: str, result: str) -> None:
        self.operator.finished(port, result)
        with self.lock:
            self.finished += 1
            if self.daemon is not None:
                self.rss.append((self.incarnation, rss_kb(self.daemon.pid)))
            self.lock.notify_all()

    def start_daemon(self) -> None:
        self.incarnation += 1
        self.started_at = time.time()  # rows started from now on belong to this incarnation
        connections = self.server.connections
        log = open(self.dir / f"gangd-{self.incarnation}.log", "w")  # noqa: SIM115 - closed with the process
        self.daemon = subprocess.Popen(
            [
                *GANGD,
                "run",
                "--config",
                str(self.config),
                "--sim-socket",
                str(self.dir / "hub.sock"),
                "--state-dir",
                str(self.state),
                "--log-level",
                "info",
                "--workers",
                str(self.args.workers),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                "MALLOC_ARENA_MAX": "2",
                **(self.resource_faults.daemon_env() if self.resource_faults is not None else {}),
            },
        )
        deadline = time.monotonic() + 60
        while self.server.connections == connections:
            if time.monotonic() > deadline or self.daemon.poll() is not None:
                raise RuntimeError(f"gangd did not start; see {log.name}")
            time.sleep(0.05)

    def wait_finished(self, count: int, timeout: float) -> None:
        with self.lock:
            if not self.lock.wait_for(lambda: self.finished >= count, timeout):
                boards = {path: (port.board.serial if port.board else None) for path, port in self.hub.ports.items()}
                for port in self.hub.ports.values():
                    if port.board is not None:
                        print(
                            "stuck board",
                            port.path,
                            port.board.serial,
                            port.devnode,
                            port.board.stage,
                            port.board.spec.faults,
                            [(r.stage, r.command, r.status) for r in port.board.log][-8:],
                            self.kill_log,
                            file=sys.stderr,
                        )
                raise RuntimeError(
                    f"only {self.finished} of {count} boards finished within {timeout:.0f} s "
                    f"(made {self.operator.made}, replaced {self.operator.replaced}, ports {boards})"
                )

    def wait_done(self, timeout: float) -> list[str]:
        """Until the operator has run every board through; the ports still holding one are stuck."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.operator.done:
                return []
            time.sleep(0.2)
        return [path for path, port in self.hub.ports.items() if port.board is not None]

    def committed(self) -> dict[int, str]:
        store = RecordStore(self.db)
        rows = {row["id"]: row["result"] for row in store.jobs()}
        store.close()
        return rows

    def kill_and_restart(self) -> None:
        before = self.committed()  # read just before the kill: all of these are on disk
        self.last_id_before_restart = max(before, default=0)
        self.daemon.send_signal(signal.SIGKILL)
        self.daemon.wait()
        # A board the dead gangd left between stages (jumped, but the flashloader never came up)
        # is invisible to the new one: the operator sees a dark port and replugs it, before the
        # new gangd starts (after, a board the new gangd has just reset is dark for its
        # re-enumeration, and a replug would make a finished board one to program again).
        # (its grace: four re-enumerations, and every port of the controller enumerating before it)
        grace_s = 4 * self.timing.reenumeration_s + len(self.ports) * self.timing.address0_s()
        replugged = self.operator.replug_silent(grace_s=grace_s * self.timing.time_scale)
        self.start_daemon()  # marks what was running as interrupted before it connects
        # A port whose board was pulled out (its "removed" never reported) gets a fresh one.
        self.operator.populate()
        after = self.committed()
        lost = [i for i, result in before.items() if result != "running" and after.get(i) != result]
        # A job may still commit its own result between the read above and the kill: only one
        # left "running" after the restart is unmarked.
        unmarked = [i for i, result in before.items() if result == "running" and after.get(i) == "running"]
        interrupted = [i for i, result in before.items() if result == "running" and after.get(i) == "interrupted"]
        self.kill_log.append(
            {
                "at_board": self.finished,
                "committed": len(before),
                "lost": lost,
                "interrupted": interrupted,
                "unmarked": unmarked,
                "replugged": replugged,
            }
        )

    def run(self) -> dict:
        started = time.monotonic()
        self.operator.populate()
        self.start_daemon()
        rng = random.Random(self.args.seed)
        last_kill = int(self.args.boards * 0.6)
        kill_points = sorted(rng.sample(range(10, max(11 + self.args.kills, last_kill)), self.args.kills))
        for n, point in enumerate(kill_points):
            self.wait_finished(point, self.args.timeout)
            if self.resource_faults is not None:  # a fault between two kills, on a working station
                self.resource_faults.cycle(n, self.daemon)
            time.sleep(rng.random() * 0.3)  # a random moment, not just after a result
            self.kill_and_restart()
        first_final = self.started_at
        stuck = self.wait_done(self.args.timeout)
        self.operator.stop()
        stuck += [p for p in self.settle() if p not in stuck]
        metrics = self.scrape()
        self.suspect_ports = self.suspects()
        self.daemon.send_signal(signal.SIGTERM)
        self.daemon.wait(timeout=120)
        records = RecordStore(self.db)
        rows = records.jobs()
        records.close()
        self.hub.close()
        self.server.close()
        summary = self.summarise(rows, first_final, metrics, stuck, time.monotonic() - started)
        if self.resource_faults is not None:
            summary["resource_cycles"] = self.resource_faults.cycles
            summary["resource_invariants"] = self.resource_faults.invariants()
            # Every board gangd said a word to has its row (a job records its start before it
            # touches the board), and no row of a programmed board is left incomplete.
            recorded = {r["serial"] for r in rows}
            summary["touched_without_record"] = [s for s, b in self.hub.boards.items() if b.log and s not in recorded]
            summary["records_left_incomplete"] = [
                r["id"] for r in rows if r["result"] == "running" or r["finished"] is None
            ]
            # Steps are timed on the monotonic clock: a wall-clock step shows in none of them.
            summary["durations_off"] = [
                r["id"] for r in rows if any(not 0 <= step["seconds"] < 3600 for step in r["steps"])
            ]
        return summary

    def settle(self) -> list[str]:
        """Wait for every job to end; the ports still busy after that are stuck."""
        deadline = time.monotonic() + 120
        status = {}
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/status", timeout=5) as response:
                status = json.load(response)
            busy = [p["port"] for p in status["ports"] if p["state"] not in ("idle", "suspect")]
            if not busy:
                return []
            time.sleep(0.5)
        return busy

    def suspects(self) -> list[str]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/status", timeout=5) as response:
            return [p["port"] for p in json.load(response)["ports"] if p["suspect"]]

    def scrape(self) -> dict[tuple[str, str], int]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=5) as response:
            text = response.read().decode()
        counts = {}
        for line in text.splitlines():
            if line.startswith("gangd_boards_total{"):
                labels, value = line.rsplit(" ", 1)
                fields = dict(item.split("=") for item in labels[len("gangd_boards_total{") : -1].split(","))
                counts[(fields["port"].strip('"'), fields["result"].strip('"'))] = int(float(value))
        return counts

    def summarise(self, rows, first_final, metrics, stuck, wall_s) -> dict:
        boards = self.hub.boards
        label = {port: f"P{n:02d}" for n, port in enumerate(self.ports, start=1)}
        by_serial: dict[str, list[dict]] = {}
        for row in rows:
            by_serial.setdefault(row["serial"], []).append(row)
        false_successes = []
        latest = {serial: max(r["id"] for r in board_rows) for serial, board_rows in by_serial.items()}
        for row in rows:
            # A board's flash is judged against its latest record: a success that a later job on
            # the same board superseded (a kill between its record and its reset left it in its
            # flashloader, the next start programmed it again, and that job failed on a flaky port)
            # says what was true when it was written; the board's record now says failed.
            if row["result"] != "success" or row["id"] != latest[row["serial"]]:
                continue
            board = boards[row["serial"]]
            srk = [board.otp.read(24 + i) for i in range(8)]
            if board.flash_image(0x6000_0000, len(IMAGE)) != IMAGE or srk != SRK:
                false_successes.append(row["id"])
        # Boards whose flow the simulator saw completed: the plan's flashloader commands, in order.
        planned = [line.args[0] for line in tool_lines(plan(load_config(self.config).recipe)) if line.tool == "blhost"]
        completed = [b for b in boards.values() if _completed(b, planned)]
        lost = [b.serial for b in completed if not any(r["result"] == "success" for r in by_serial.get(b.serial, []))]
        lost += [i for kill in self.kill_log for i in kill["lost"]]
        unmarked = [i for kill in self.kill_log for i in kill["unmarked"]]
        interrupted = [next(r for r in rows if r["id"] == i) for kill in self.kill_log for i in kill["interrupted"]]
        # A board that was pulled out (a disconnect fault) while gangd was dead cannot be
        # programmed again: it left the line. Every other interrupted board must get a new job.
        pulled = {
            serial
            for serial, board in boards.items()
            if board.own_faults.fired_counts().get(
                next((spec for spec in board.own_faults.fired_counts() if spec.startswith("disconnect")), ""), 0
            )
        }
        not_again = [
            r["id"]
            for r in interrupted
            if r["serial"] not in pulled and not any(o["id"] > r["id"] for o in by_serial.get(r["serial"], []))
        ]
        final_incarnation_rows = [r for r in rows if r["started"] >= first_final]
        expected = Counter((label[r["port"]], r["result"]) for r in final_incarnation_rows)
        mismatches = {
            f"{k[0]}/{k[1]}": {"metrics": metrics.get(k, 0), "records": expected.get(k, 0)}
            for k in set(metrics) | set(expected)
            if metrics.get(k, 0) != expected.get(k, 0)
        }
        final_rss = [kb for inc, kb in self.rss if inc == self.incarnation and kb]
        tenth = max(1, len(final_rss) // 10)
        growth = statistics.mean(final_rss[-tenth:]) / statistics.mean(final_rss[:tenth]) - 1 if final_rss else 0.0
        faults: Counter[str] = Counter()
        for board in boards.values():
            states = set()
            for spec, fired in board.own_faults.fired_counts().items():
                kind = spec.split(":")[0]
                if kind in ("otp", "slow-flash"):  # states the board arrives with: count boards
                    states.add(kind)
                else:
                    faults[kind] += fired
            faults.update(states)
        for port in self.hub.ports.values():
            for spec, fired in port.faults.fired_counts().items():
                faults["port:" + spec.split(":")[0]] += fired
        recoveries = Counter(a["action"] for r in rows for a in r["attempts"])
        ever_suspect = _ports_ever_suspect(rows, k=3)
        mechanisms = _mechanism_outcomes(boards, by_serial)
        serials = _serial_outcomes(boards, rows, self.db) if self.args.serials else {}
        return {
            "boards": len(boards),
            "jobs": len(rows),
            "results": dict(Counter(r["result"] for r in rows)),
            "faults_injected": dict(faults),
            "recoveries": dict(recoveries),
            "kills": len(self.kill_log),
            "interrupted_jobs": len(interrupted),
            "interrupted_not_marked": unmarked,
            "interrupted_not_programmed_again": not_again,
            "suspect_ports": self.suspect_ports,
            "ever_suspect": ever_suspect,
            "retested": self.operator.retested,
            "false_successes": false_successes,
            "lost_records": lost,
            "metrics_vs_records_mismatches": mismatches,
            "ports_left_stuck": stuck,
            # A static topology with admission on: no board may end for lack of USB bandwidth.
            "stopped_for_bandwidth": [
                r["id"] for r in rows if r["result"] == "stopped" and (r["reason"] or "").startswith("USB bandwidth")
            ],
            **mechanisms,
            **serials,
            "rss_growth": growth,
            "rss_final_kb": final_rss[-1] if final_rss else 0,
            "rss_samples_kb": final_rss,
            "wall_s": wall_s,
        }


def _ports_ever_suspect(rows, k: int) -> list[str]:
    """Replay the records through the station's rule: k failures in a row on a port, each of a
    board that has passed on another port by then."""
    passed: set[tuple[str, str]] = set()
    history: dict[str, list[dict]] = {}
    flagged = set()
    for row in rows:
        if row["result"] == "success":
            passed.add((row["serial"], row["port"]))
        history.setdefault(row["port"], []).append(row)
        for port, port_rows in history.items():
            recent = port_rows[-k:]
            if len(recent) == k and all(
                r["result"] == "failed" and any(s == r["serial"] and p != port for s, p in passed) for r in recent
            ):
                flagged.add(port)
    return sorted(flagged)


def _serial_outcomes(boards, rows: list[dict], db: Path) -> dict:
    """Per-board serials: each successful board's flash holds the serial its record names; no serial
    is in two boards' flash or handed out twice; every value handed out is in the records."""
    store = RecordStore(db)
    allocations = store.allocations()
    store.close()
    wrong_in_flash = []
    for row in rows:
        if row["result"] == "success":
            value = row["board_data"].get("serial", "")
            held = boards[row["serial"]].flash_image(SERIAL_AT, SERIAL_SIZE)
            if held != value.encode() + b"\xff" * (SERIAL_SIZE - len(value)):
                wrong_in_flash.append(row["id"])
    in_flash = Counter(
        held.rstrip(b"\xff")
        for board in boards.values()
        if (held := board.flash_image(SERIAL_AT, SERIAL_SIZE)) != b"\xff" * SERIAL_SIZE
    )
    issued = Counter(a["value"] for a in allocations)
    by_id = {row["id"]: row for row in rows}
    unaccounted = [
        a for a in allocations if by_id.get(a["record_id"], {}).get("board_data", {}).get("serial") != a["value"]
    ]
    board_ids = {a["board_id"]: a["value"] for a in allocations}
    strays = [
        serial
        for serial, board in boards.items()
        if board.flash_image(SERIAL_AT, SERIAL_SIZE) != b"\xff" * SERIAL_SIZE
        and board_ids.get(f"{board.uuid:016x}", "").encode()
        != board.flash_image(SERIAL_AT, SERIAL_SIZE).rstrip(b"\xff")
    ]
    return {
        "serials_issued": len(allocations),
        "serial_not_in_flash": wrong_in_flash,
        "serial_issued_twice": [v for v, n in issued.items() if n > 1]
        + [v.decode() for v, n in in_flash.items() if n > 1],
        "serial_not_accounted": [a["value"] for a in unaccounted] + strays,
    }


def _mechanism_outcomes(boards, by_serial: dict[str, list[dict]]) -> dict:
    """How the boards with a flash mechanism ended. A marginal board must end programmed, at a clock
    its read path takes; a board protected for good must never succeed, and fail naming the
    protection; a board protected until power-off must end programmed (power cycling is allowed)."""
    marginal, marginal_wrong, protected, protected_wrong, volatile_wrong = [], [], [], [], []
    for serial, board in boards.items():
        specs = board.spec.faults
        rows = by_serial.get(serial, [])
        successes = [r for r in rows if r["result"] == "success"]
        if any(spec.startswith("marginal-read") for spec in specs):
            marginal.append(serial)
            limit = board.flash.max_read_mhz
            if not successes or any(r["flash_clock_mhz"] > limit or not r["marginal"] for r in successes):
                marginal_wrong.append(serial)
        elif "write-protect:persist=always" in specs:
            protected.append(serial)
            failed = [r for r in rows if r["result"] == "failed"]
            if successes or not failed or not all(r["reason"].startswith("flash write-protected") for r in failed):
                protected_wrong.append(serial)
        elif "write-protect:persist=power" in specs and not successes:
            volatile_wrong.append(serial)
    clocks = Counter(
        r["flash_clock_mhz"] for serial in marginal for r in by_serial.get(serial, []) if r["result"] == "success"
    )
    return {
        "marginal_boards": marginal,
        "protected_boards": protected,
        "marginal_clocks": dict(clocks),
        "marginal_not_programmed_right": marginal_wrong,
        "protected_not_failed_right": protected_wrong,
        "volatile_protected_not_programmed": volatile_wrong,
    }


def _completed(board, planned: list[str]) -> bool:
    """Did one flashloader session of the board carry every command of the plan, in order, each
    last answered with success (retries and diagnoses in between)? Sessions end in the ROM."""
    session: list[tuple[str, int | None]] = []
    for record in board.log:
        if record.stage != "flashloader":
            session = []
            continue
        session.append((record.command, record.status))
        if record.command == "reset" and record.status == 0:
            remaining = iter(session)
            if all(any(command == want and status == 0 for command, status in remaining) for want in planned):
                return True
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--boards", type=int, default=1000)
    parser.add_argument("--ports", type=int, default=16)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--time-scale", type=float, default=0.05)
    parser.add_argument("--replace-delay", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for each stage")
    parser.add_argument(
        "--marginal", type=float, default=0.0, help="mechanism variant: share of boards with a marginal flash read path"
    )
    parser.add_argument(
        "--protected",
        type=float,
        default=0.0,
        help="mechanism variant: share of boards write-protected for good (as many again with volatile protection)",
    )
    parser.add_argument(
        "--serials",
        action="store_true",
        help="per-board data variant: every board gets a serial number from a counter, in flash",
    )
    parser.add_argument(
        "--root-ports",
        type=int,
        help="the ports spread over K root ports (default 1, 2 with --everything)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        help="gangd's worker processes for the jobs (gangd run --workers; default 0, 2 with --everything)",
    )
    parser.add_argument(
        "--everything",
        action="store_true",
        help="the whole line at once: every mechanism (--marginal 0.2 --protected 0.05 unless given), "
        "--serials, jobs in 2 worker processes (unless --workers), among every other fault, retests "
        "on other ports and the SIGKILLs",
    )
    parser.add_argument(
        "--resource-faults",
        action="store_true",
        help="between the kills, fill the state directory's filesystem (a tmpfs: root) and free it, "
        "lock the journal past gangd's busy timeout and release it, and step gangd's wall clock two "
        "days back and forward (libfaketime) (tools/resource_faults.py)",
    )
    parser.add_argument("--json", help="also write the summary here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, records)")
    args = parser.parse_args(argv)
    if args.everything:
        args.marginal = args.marginal or 0.2
        args.protected = args.protected or 0.05
        args.serials = True
        args.workers = 2 if args.workers is None else args.workers
        args.root_ports = args.root_ports or 2
    args.workers = args.workers or 0
    args.root_ports = args.root_ports or 1
    logs.configure("warning", stream=sys.stderr)  # the simulator's spsdk database stays quiet
    directory = Path(tempfile.mkdtemp(prefix="gangd-soak-"))
    try:
        summary = Soak(args, directory).run()
    finally:
        if args.resource_faults:
            resource_faults.unmount_state(directory / "state")
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)
    invariants = {
        "false successes": len(summary["false_successes"]),
        "lost records": len(summary["lost_records"]),
        "metrics vs records mismatches": len(summary["metrics_vs_records_mismatches"]),
        "ports left stuck": len(summary["ports_left_stuck"]),
        "boards stopped for USB bandwidth": len(summary["stopped_for_bandwidth"]),
        "interrupted jobs not marked": len(summary["interrupted_not_marked"]),
        "interrupted boards not programmed again": len(summary["interrupted_not_programmed_again"]),
        "marginal boards not programmed right": len(summary["marginal_not_programmed_right"]),
        "protected boards not failed right": len(summary["protected_not_failed_right"]),
        "volatile-protected boards not programmed": len(summary["volatile_protected_not_programmed"]),
    }
    if args.serials:
        invariants.update(
            {
                "successful boards whose flash lacks their serial": len(summary["serial_not_in_flash"]),
                "serials issued twice": len(summary["serial_issued_twice"]),
                "serials not accounted for by the records": len(summary["serial_not_accounted"]),
            }
        )
        print(f"serials:         {summary['serials_issued']} issued")
    if args.resource_faults:
        invariants.update(summary["resource_invariants"])
        invariants["boards touched without a record"] = len(summary["touched_without_record"])
        invariants["programmed boards' records incomplete"] = len(summary["records_left_incomplete"])
        invariants["step durations off by a clock step"] = len(summary["durations_off"])
        cycles = summary["resource_cycles"]
        print(
            f"resource faults: {len(cycles)} ({', '.join(c['kind'] for c in cycles)}); bit: "
            f"{sum(c['bit'] for c in cycles)}; resumed after "
            f"{max((c['resumed_s'] for c in cycles), default=0):.1f} s at most"
        )
    print(
        f"soak: {summary['boards']} boards, {summary['jobs']} jobs, {summary['kills']} SIGKILLs, "
        f"{summary['wall_s']:.0f} s wall, seed {args.seed}"
    )
    print(f"results:         {summary['results']}")
    print(f"faults injected: {dict(sorted(summary['faults_injected'].items()))}")
    print(f"recoveries:      {dict(sorted(summary['recoveries'].items()))}")
    print(
        f"interrupted jobs: {summary['interrupted_jobs']}; failed boards retested elsewhere: "
        f"{summary['retested']}; ports flagged suspect: {summary['ever_suspect']} (at the end: "
        f"{summary['suspect_ports']})"
    )
    if args.marginal or args.protected:
        print(
            f"mechanisms:      {len(summary['marginal_boards'])} marginal boards, flash clocks of their "
            f"successes: {dict(sorted(summary['marginal_clocks'].items()))}; "
            f"{len(summary['protected_boards'])} boards protected for good"
        )
    for name, value in invariants.items():
        print(f"{name:<42} {value}")
    growth = summary["rss_growth"]
    print(
        f"{'memory growth, first to last 10 % of boards':<42} {growth * 100:+.1f} % "
        f"(final RSS {summary['rss_final_kb'] / 1024:.0f} MB)"
    )
    ok = not any(invariants.values()) and growth < 0.10
    print("soak: PASS" if ok else f"soak: FAIL (seed {args.seed}: rerun with --seed {args.seed})")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
