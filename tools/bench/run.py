"""`python -m tools.bench`: one table of figures, also written as JSON for comparing runs.

Phases (all on the simulator's default timing model, boards in their own process):
1. floor ratio: one board, the user's recipe with a 45,056-byte image, then with a 1 MiB image;
2. scaling: batches of N = 1, 8, 32, 64 boards plugged at once on their own ports, the largest
   `--big-repeats` times in the same station (its rows give the median batch, the others beside);
3. latency: from each board's first hotplug event to its first USB command (measured by the sim);
4. cost: gangd's CPU seconds per board and resident memory, idle and at N = 64, and what tracing
   every board ([trace] keep = "all", gangd/trace) adds to it; gangd's and the simulator's CPU per
   MiB of image (1 MiB and 8 MiB images, time scale 0, `tools/bench/cost.py`); N = 128 boards on
   16 root ports and gangd's resident memory there;
5. peers on the same simulated boards: the provisioning tool's way (one sdphost/blhost process per
   command over the board's pty) and a sequential spsdk loop over the boards.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gc
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from gangd.config.recipe import Recipe, TraceSettings, builtin_rt1020
from gangd.core.events import PortEvent
from gangd.engine.floor import physics_s
from gangd.engine.plan import (
    ConfigureMemory,
    Erase,
    Identify,
    LoadFlashloader,
    Open,
    Reset,
    Stage,
    Verify,
    WaitStage,
    Write,
    tool_lines,
)
from gangd.engine.plan import plan as plan_steps
from gangd.service import collector, logs
from gangd.service.worker import command as worker_command
from gangd.sim.hub import default_port_paths
from gangd.sim.images import build_flashloader_image
from gangd.sim.socket_source import json_messages
from gangd.sim.timing import TimingModel
from gangd.station.station import Station
from gangd.station.workers import WorkerPool
from gangd.trace.recorder import writer_cpu_s
from tools.bench.bus import DEFAULT_TOPOLOGIES, bus_phase, bus_rows, calibration_s, topologies
from tools.bench.floor import bus_floor_s, floor_s, naive

IMAGE_SMALL = 45056
IMAGE_LARGE = 1024 * 1024
SIM = [sys.executable, "-m", "tools.bench.simproc"]
BIN = Path(sys.executable).parent


def proc_mb(pid: int | str, file: str, field: str) -> float:
    """A `field: N kB` line of /proc/PID/<file>, in MB (0 once the process is gone)."""
    try:
        text = Path(f"/proc/{pid}/{file}").read_text()
    except FileNotFoundError:
        return 0.0
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_mb(pid: int | str = "self") -> float:
    return proc_mb(pid, "status", "VmRSS")


def process_cpu_s(pid: int) -> float:
    """A live process's CPU seconds so far (user + system), from /proc/PID/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def gangd_cpu_s(pool: WorkerPool | None) -> float:
    """gangd's CPU so far: this process's, and its worker processes' when it has them."""
    workers = [] if pool is None else pool.pids()
    return time.process_time() + sum(process_cpu_s(pid) for pid in workers)


def step_means(results: list) -> dict[str, float]:
    """Each step's mean time over the batch's jobs (where a batch loses time to its load)."""
    times: dict[str, list[float]] = {}
    for result in results:
        for step in result.steps:
            times.setdefault(step.name, []).append(step.seconds)
    return {name: round(statistics.mean(values), 4) for name, values in times.items()}


def pss_mb(pid: int | str = "self") -> float:
    """A process's proportional set size: its private pages and its share of the pages it shares
    (a worker's Python and spsdk pages are shared with the others: RSS would count them N times)."""
    return proc_mb(pid, "smaps_rollup", "Pss")


def make_recipe(size: int) -> Recipe:
    flashloader, jump = build_flashloader_image()
    image = hashlib.shake_256(b"gangd-bench").digest(size)
    return builtin_rt1020(image, flashloader, jump)


class SimProcess:
    """The simulated hub in a child process, driven from trio."""

    def __init__(
        self,
        ports: int,
        image_size: int,
        old_image: bool = False,
        root_ports: int = 1,
        time_scale: float = 1.0,
        extra: tuple[str, ...] = (),
        controllers: int = 1,
    ) -> None:
        self.args = [*SIM, "--ports", str(ports), "--image-size", str(image_size), "--root-ports", str(root_ports)]
        self.args += ["--controllers", str(controllers)]
        self.args += ["--time-scale", str(time_scale), *extra]
        self.args += ["--old-image"] * old_image
        self.replies = trio.open_memory_channel[tuple[Any, Any]](100)
        self.emit = None

    async def run(self, emit, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        self.emit = emit
        proc = await trio.lowlevel.open_process(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.proc = proc
        try:
            started = False
            async for kind, message in json_messages(proc.stdout):
                if kind == "event":
                    emit(PortEvent(**message))
                elif kind == "ready" and not started:
                    started = True
                    task_status.started()
                else:
                    await self.replies[0].send((kind, message))
        finally:
            with trio.CancelScope(shield=True):
                with trio.move_on_after(10):
                    await proc.wait()
                if proc.returncode is None:
                    proc.kill()

    async def command(self, text: str, reply: str | None = None) -> dict | None:
        await self.proc.stdin.send_all(text.encode() + b"\n")
        if reply is None:
            return None
        while True:
            kind, message = await self.replies[1].receive()
            if kind == reply:
                return message
            if kind == "error":
                raise RuntimeError(f"simulator: {message}")


async def gangd_phase(
    recipe: Recipe,
    batches: list[int],
    ports: int,
    idle_s: float,
    old_image: bool = False,
    root_ports: int = 1,
    time_scale: float = 1.0,
    sim_args: tuple[str, ...] = (),
    workers: int = 0,
    recipes: list[Recipe] | None = None,
    before_batch: Callable[[], object] | None = None,
    controllers: int = 1,
) -> dict:
    """gangd's station in this process, boards in the sim process (ports spread over root ports);
    with `workers`, the jobs in that many worker processes (their CPU is counted with gangd's).
    `recipes`: the recipe for each batch (as a SIGHUP reload sets it), else `recipe` for all;
    `before_batch` runs before each batch, outside its window. The figures are a list of
    batches in `out["runs"]` and, per size, the last one in `out["batches"]`."""
    family = recipe.family
    sim = SimProcess(ports, len(recipe.images[0].data), old_image, root_ports, time_scale, sim_args, controllers)
    pool = WorkerPool(workers, worker_command("warning", "warning", None)) if workers else None
    paths = default_port_paths(ports, root_ports, controllers)
    station = Station(family, recipe, dict.fromkeys(paths), workers=pool)
    out: dict = {"batches": {}, "runs": []}
    async with trio.open_nursery() as nursery:
        collector.settle()  # as the daemon does once its start-up is done (gangd/service/daemon.py)
        await nursery.start(station.run, sim.run)
        # Idle cost: the station running with no boards.
        rss_idle, cpu0, wall0 = rss_mb(), time.process_time(), time.monotonic()
        await trio.sleep(idle_s)
        out["idle_cpu_fraction"] = (time.process_time() - cpu0) / (time.monotonic() - wall0)
        out["rss_idle_mb"] = rss_idle
        # `workers`: each worker's first jobs pay its spsdk first uses; one batch before counting.
        warm_up = [ports] if workers else []
        for index, n in enumerate(warm_up + batches):
            if recipes is not None and index >= len(warm_up):
                station.recipe = recipes[index - len(warm_up)]
            if before_batch is not None:
                before_batch()
            before = station.jobs_finished
            done = trio.Event()
            target = before + n

            def finished(_result, done=done, target=target) -> None:
                if station.jobs_finished >= target:
                    done.set()

            station.listeners[:] = [finished]
            sim_cpu0 = (await sim.command("stats", "stats"))["cpu_s"]
            cpu0, wall0, at0 = gangd_cpu_s(pool), time.monotonic(), time.time()
            writer0 = writer_cpu_s()
            await sim.command(f"plug {n}")
            await done.wait()
            wall, cpu = time.monotonic() - wall0, gangd_cpu_s(pool) - cpu0
            writer = writer_cpu_s() - writer0
            results = station.results[-n:]
            stats = await sim.command("stats", "stats")
            await sim.command("unplug", "unplugged")
            expected = recipe.images[0].sha256
            out["batches"][n] = {
                "wall_s": wall,
                "failed": sum(r.result == "failed" for r in results),
                "failures": sorted({f"{r.port}: {r.reason}" for r in results if r.result != "success"}),
                "cpu_s": cpu,
                # of it, the trace writer's thread (in this process: not with `workers`)
                "trace_writer_cpu_s": writer,
                "ok": sum(r.result == "success" for r in results),
                "job_s_mean": statistics.mean(r.duration_s for r in results),
                "latencies_s": [b["latency_s"] for b in stats["boards"] if b["latency_s"] is not None],
                "flash_ok": sum(b["flash_sha256"] == expected for b in stats["boards"]),
                "rss_mb": rss_mb(),
                "rss_workers_mb": sum(rss_mb(pid) for pid in pool.pids()) if pool else 0.0,
                "pss_mb": pss_mb(),
                "pss_workers_mb": sum(pss_mb(pid) for pid in pool.pids()) if pool else 0.0,
                "sim_cpu_s": stats["cpu_s"] - sim_cpu0,
                "step_s_mean": step_means(results),
                # when the jobs started and ended, after the plug (the batch is the last end)
                "start_s": [round(r.started - at0, 4) for r in results],
                "end_s": [round(r.started + r.duration_s - at0, 4) for r in results],
            }
            out["runs"].append(out["batches"][n])
        await sim.command("quit")
        nursery.cancel_scope.cancel()
    out["rss_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def trace_cost(recipe: Recipe, boards: int, root_ports: int, rounds: int = 10, trace_dir: str | None = None) -> dict:
    """gangd's CPU per board with every board traced against without: per round an untraced
    batch, one with [trace] keep = "all" (every board's file built and written), the same with
    payload = "hash" (smaller files) and one with the default keep = "failed" (recorded, nothing
    written for a good board); each overhead is the median of the rounds' ratios.

    All batches run in one station, its recipe changed between them as a SIGHUP reload does, in
    another order each round (a batch's place must not count for or against a variant): batches
    in separate processes differed by 20-30 % in CPU per board among themselves (a process's own
    start, its heap, the simulator's new process), more than the effect measured. Garbage is
    collected before each batch, outside its window (a full collection landing in one batch cost
    it 1.2-1.8 ms per board). The traces go to a fresh directory per batch in `trace_dir`
    (default: the system's temporary directory)."""
    variants = ("none", "all", "all-hash", "failed")
    settings = {"all": ("all", "full"), "all-hash": ("all", "hash"), "failed": ("failed", "full")}
    order: list[str] = []
    for round_no in range(rounds):
        turn = round_no % len(variants)
        order += variants[turn:] + variants[:turn]
    with tempfile.TemporaryDirectory(prefix="gangd-bench-trace-", dir=trace_dir) as tmp:
        dirs = [os.path.join(tmp, f"batch{i}") for i in range(len(order))]
        recipes = [
            recipe if keep == "none" else dataclasses.replace(recipe, trace=TraceSettings(d, *settings[keep]))
            for keep, d in zip(order, dirs, strict=True)
        ]
        sizes: dict[str, list[int]] = {}
        phase = functools.partial(
            gangd_phase, root_ports=root_ports, recipes=[recipe, *recipes], before_batch=gc.collect
        )
        out = trio.run(phase, recipe, [boards] * (len(order) + 1), boards, 0.0)
        runs = out["runs"][1:]  # the first batch warms the station and the simulator up
        for keep, d in zip(order, dirs, strict=True):
            if keep.startswith("all"):
                sizes.setdefault(keep, []).extend(p.stat().st_size for p in Path(d).glob("*.pcapng"))
        files = len(list(Path(dirs[order.index("all")]).glob("*.pcapng")))
    cpu = dict.fromkeys(variants, 0.0)
    writer = dict.fromkeys(variants, 0.0)
    ratios: dict[str, list[float]] = {v: [] for v in variants[1:]}
    # The batch's time too: with enumeration serialised per controller, what a station's owner
    # sees is the batch, and the trace's CPU is spent beside the kernel's queue, not before it.
    wall_ratios: dict[str, list[float]] = {v: [] for v in variants[1:]}
    for round_no in range(rounds):
        batch = {keep: runs[round_no * 4 + i] for i, keep in enumerate(order[round_no * 4 : round_no * 4 + 4])}
        pair = {keep: run["cpu_s"] for keep, run in batch.items()}
        for keep, seconds in pair.items():
            cpu[keep] += seconds
            writer[keep] += batch[keep]["trace_writer_cpu_s"]
        for keep in variants[1:]:
            ratios[keep].append(pair[keep] / pair["none"])
            wall_ratios[keep].append(batch[keep]["wall_s"] / batch["none"]["wall_s"])
    ok = min(run["ok"] for run in runs)
    per_board = {keep: seconds / (boards * rounds) * 1000 for keep, seconds in cpu.items()}
    return {
        "boards": boards,
        "rounds": rounds,
        "cpu_ms": per_board,
        # the trace writer's own thread: files built, written and rotated (its thread's clock)
        "writer_ms": {keep: seconds / (boards * rounds) * 1000 for keep, seconds in writer.items()},
        "overhead": {keep: statistics.median(r) - 1 for keep, r in ratios.items()},
        "overhead_rounds": {keep: [x - 1 for x in r] for keep, r in ratios.items()},
        "batch_overhead": {keep: statistics.median(r) - 1 for keep, r in wall_ratios.items()},
        "batch_overhead_rounds": {keep: [x - 1 for x in r] for keep, r in wall_ratios.items()},
        "ok": ok,
        "failures": [reason for run in runs for reason in run["failures"]],
        "files": files,
        "trace_kb_mean": {keep: statistics.mean(s) / 1024 for keep, s in sizes.items() if s},
        "trace_dir": trace_dir or tempfile.gettempdir(),
    }


def trace_rows(tr: dict) -> list[tuple[str, str, str, str]]:
    spread = {keep: f"{min(r) * 100:+.0f}..{max(r) * 100:+.0f} %" for keep, r in tr["overhead_rounds"].items()}
    rows = []
    kb = tr["trace_kb_mean"]
    for keep, what in (
        ("all", f"{tr['files']} traces of {kb['all']:.0f} KB written in {tr['trace_dir']}"),
        ("all-hash", f"payload=hash, traces of {kb['all-hash']:.0f} KB"),
        ("failed", "none written"),
    ):
        name = "keep=all, payload=hash" if keep == "all-hash" else f"keep={keep}"
        rows.append(
            (
                f"gangd CPU per board, trace {name}",
                f"{tr['overhead'][keep] * 100:+.1f} %",
                f"{tr['cpu_ms'][keep]:.2f} vs {tr['cpu_ms']['none']:.2f} ms untraced, median of {tr['rounds']}"
                f" rounds ({spread[keep]}), N={tr['boards']}, {tr['ok']}/{tr['boards']} ok; {what};"
                f" the writer's thread {tr['writer_ms'][keep]:.2f} ms of it",
                "<= +10 %",
            )
        )
    targets = {"all": "<= +3 %", "all-hash": "", "failed": "<= +1 %"}
    for keep, target in targets.items():
        name = "keep=all, payload=hash" if keep == "all-hash" else f"keep={keep}"
        walls = tr["batch_overhead_rounds"][keep]
        rows.append(
            (
                f"N={tr['boards']} batch time, trace {name}",
                f"{tr['batch_overhead'][keep] * 100:+.1f} %",
                f"vs untraced in the same round, median of {tr['rounds']} ({min(walls) * 100:+.1f}..{max(walls) * 100:+.1f} %)",
                target,
            )
        )
    if tr["files"]:  # one trace per board with keep=all: the writer's CPU per board is per trace
        rows.append(
            (
                "trace writer CPU per trace, keep=all",
                f"{tr['writer_ms']['all']:.2f} ms",
                f"per {tr['trace_kb_mean']['all']:.0f} KB file, on the writer's thread (never trio's)",
                "",
            )
        )
    return rows


def print_table(rows: list[tuple[str, str, str, str]]) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>14}  {'target':<10}  detail")
    for name, value, detail, target in rows:
        print(f"{name:<{width}}  {value:>14}  {target:<10}  {detail}")


def cli_peer(recipe: Recipe, workdir: Path) -> float:
    """The provisioning tool's way: one sdphost/blhost process per command of the plan (`gangd plan`
    prints the same lines), over the board's pty."""
    steps = plan_steps(recipe)
    for step in steps:
        if isinstance(step, LoadFlashloader):
            (workdir / (step.path or "flashloader.bin")).write_bytes(step.data)
        elif isinstance(step, Write):
            (workdir / (step.image.path or "image.bin")).write_bytes(step.image.data)
    sim = subprocess.Popen([*SIM, "--ports", "1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    sim.stdout.readline()  # ready
    sim.stdin.write("uart\n")
    sim.stdin.flush()
    port = json.loads(sim.stdout.readline())["path"]

    def tool(name: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / name), "-p", port, *args], check=True, capture_output=True, timeout=120, cwd=workdir
        )

    started = time.monotonic()
    for line in tool_lines(steps):
        if line.tool:
            tool(line.tool, *line.args)
        if isinstance(line.step, Verify) and (workdir / line.args[3]).read_bytes() != line.step.image.data:
            raise RuntimeError("CLI peer: read-back differs")
        if isinstance(line.step, WaitStage) and line.step.target == Stage.ROM:
            # Proof of reboot, as gangd and the sequential loop wait for it: the ROM answers again.
            deadline = time.monotonic() + 10
            while (
                subprocess.run(
                    [str(BIN / "sdphost"), "-p", port, "-t", "200", "error-status"], capture_output=True
                ).returncode
                != 0
            ):
                if time.monotonic() > deadline:
                    raise RuntimeError("CLI peer: the board did not come back after reset")
    elapsed = time.monotonic() - started
    sim.stdin.write("quit\n")
    sim.stdin.flush()
    sim.wait(timeout=30)
    return elapsed


def sequential_peer(recipe: Recipe, boards: int) -> float:
    """A hand-written spsdk loop: one board after another, each through the plan's steps with the
    same board operations gangd uses, over the same transport, with no engine around them."""
    from gangd.engine import board_ops as ops
    from gangd.io.transport import FdHidDevice, mboot_client, sdp_client

    sim = subprocess.Popen([*SIM, "--ports", str(boards)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    sim.stdout.readline()
    pending: list[dict] = []

    def next_add(port: str, pid: int) -> str:
        while True:
            for event in pending:
                if event["port"] == port and event["action"] == "add" and event["pid"] == pid:
                    pending.remove(event)
                    return event["devnode"]
            message = json.loads(sim.stdout.readline())
            if message.get("type") == "event":
                pending.append(message)

    family = recipe.family
    pids = {Stage.ROM: family.rom_usb[0].pid, Stage.FLASHLOADER: family.flashloader_usb[0].pid}
    steps = plan_steps(recipe)
    sim.stdin.write("plug\n")
    sim.stdin.flush()
    started = time.monotonic()
    for n in range(1, boards + 1):
        port = f"1-1.{n}"
        devnode, device, mboot = next_add(port, pids[Stage.ROM]), None, None
        for step in steps:
            match step:
                case LoadFlashloader():
                    device = FdHidDevice(devnode)
                    ops.load_flashloader(sdp_client(device), step)
                    device.dispose()
                case WaitStage():
                    devnode = next_add(port, pids[step.target])  # after the reset: the same proof gangd waits for
                case Open():
                    device = FdHidDevice(devnode)
                    mboot = ops.open_mboot(mboot_client(device))
                case Identify():
                    ops.identify(mboot)
                case ConfigureMemory():
                    ops.configure(mboot, step, step.option_words)
                case Erase():
                    mboot.flash_erase_region(step.address, step.length, step.memory_id)
                case Write():
                    mboot.write_memory(step.image.address, step.image.data, step.memory_id)
                case Verify():
                    ops.verify(mboot, step.image, step.memory_id)
                case Reset():
                    mboot.reset(reopen=False)
                    mboot.close()
                    device.dispose()
                case _:
                    raise NotImplementedError(f"the sequential peer has no {step.name} step")
    elapsed = time.monotonic() - started
    sim.stdin.write("quit\n")
    sim.stdin.flush()
    sim.wait(timeout=30)
    return elapsed


def sequence_old(recipe: Recipe, model: TimingModel) -> float:
    """The naive sequence on a board holding an old image: the same commands as on a blank one."""
    return floor_s(recipe, model)["total"]


def sizes(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def measure_cost(image_size: int, boards: int, root_ports: int, time_scale: float) -> dict:
    from tools.bench.cost import measure

    return measure(image_size, boards, root_ports, time_scale)


def calibration_row(calibration: float) -> tuple[str, str, str, str]:
    return ("calibration: fixed pure-Python loop", f"{calibration:.3f} s CPU", "read every figure against it", "")


def median_run(runs: list[dict]) -> dict:
    """The run whose batch took the median time (of an even count, the slower middle one)."""
    return sorted(runs, key=lambda run: run["wall_s"])[len(runs) // 2]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", default="bench-results.json", help="where to write the figures as JSON")
    parser.add_argument("--batches", default="1,8,32,64")
    parser.add_argument(
        "--big-repeats",
        type=int,
        default=1,
        help="how many times the largest batch runs; its rows give the median batch (default once: at N=64"
        " on one controller the batch is the kernel's enumeration queue, 17 s, and moves by < 0.1 %%; the bus"
        " row N=64:1:8 is the same topology)",
    )
    parser.add_argument("--sequential-boards", type=int, default=4)
    parser.add_argument("--crowded", type=int, default=16, help="boards behind one root port (budget 8)")
    parser.add_argument("--idle-s", type=float, default=5.0)
    parser.add_argument(
        "--cost-sizes", default=f"{IMAGE_LARGE},{8 * IMAGE_LARGE}", help="image sizes for CPU per MiB ('' to skip)"
    )
    parser.add_argument("--cost-boards", type=int, default=8, help="boards per CPU-per-MiB run (8 on one root port)")
    parser.add_argument("--large", type=int, default=128, help="N for the big batch on N/8 root ports (0 to skip)")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 2,
        help="worker processes for the N=max row again (default: one per core; 0 to skip)",
    )
    parser.add_argument("--skip-peers", action="store_true", help="leave out the CLI and sequential peers")
    parser.add_argument("--trace-boards", type=int, help="boards in the tracing batches (default: the largest batch)")
    parser.add_argument(
        "--trace-rounds",
        type=int,
        default=2,
        help="rounds of the tracing batches (four N=64 batches of 17 s each; default 2)",
    )
    parser.add_argument(
        "--trace-dir", help="where the tracing batches write their traces (default: the system's temporary directory)"
    )
    parser.add_argument("--tracing-only", action="store_true", help="only the tracing rows")
    parser.add_argument(
        "--bus-rows",
        default=DEFAULT_TOPOLOGIES,
        metavar="N:K:R,...",
        help="batches of N boards on K host controllers and R root ports against the bus floor ('' to skip)",
    )
    parser.add_argument(
        "--bus-repeats",
        type=int,
        default=1,
        help="batches per bus row (the median is kept; default 1: enumeration-bound rows move by < 0.1 %%)",
    )
    parser.add_argument("--bus-only", action="store_true", help="only the calibration and the bus rows")
    parser.add_argument(
        "--bus-image-size",
        type=int,
        default=IMAGE_SMALL,
        help="bytes of image per board in the --bus-only rows (a large one makes bandwidth bind too)",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: N = 1, 2 and one sequential board")
    args = parser.parse_args(argv)
    if args.quick:
        args.batches, args.sequential_boards, args.idle_s, args.crowded = "1,2", 1, 0.2, 10
        args.cost_sizes, args.cost_boards, args.large = str(IMAGE_LARGE), 2, 0
        args.trace_rounds, args.big_repeats = 2, 2
        args.bus_rows, args.bus_repeats = "2:1:1,4:2:2", 1
        args.workers = min(args.workers, 2)
    logs.configure("warning")
    model = TimingModel()
    batches = [int(n) for n in args.batches.split(",")]
    trace_n = args.trace_boards or max(batches)
    calibration = calibration_s()
    if args.bus_only:
        bus = bus_phase(
            gangd_phase, make_recipe(args.bus_image_size), model, topologies(args.bus_rows), args.bus_repeats
        )
        print_table([calibration_row(calibration), *bus_rows(bus, calibration)])
        Path(args.json).write_text(json.dumps({"calibration_s": calibration, "bus": bus}, indent=1, default=str))
        return 0
    if args.tracing_only:
        tracing = trace_cost(
            make_recipe(IMAGE_SMALL), trace_n, max(1, -(-trace_n // 8)), args.trace_rounds, args.trace_dir
        )
        print_table([calibration_row(calibration), *trace_rows(tracing)])
        Path(args.json).write_text(
            json.dumps({"calibration_s": calibration, "tracing": tracing}, indent=1, default=str)
        )
        return 0
    figures: dict = {"model": dataclasses.asdict(model), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    figures["calibration_s"] = calibration
    started = time.monotonic()

    # 1. against the physics floor, one board, both images, blank and holding an old image
    floor: dict[int, dict] = {}
    for size in (IMAGE_SMALL, IMAGE_LARGE):
        recipe = make_recipe(size)
        for blank in (True, False):
            run = trio.run(gangd_phase, recipe, [1], 1, 0.0, not blank)
            batch = run["batches"][1]
            physics = physics_s(recipe, model, blank)
            entry = {
                "gangd_s": batch["job_s_mean"],
                "floor_s": physics["total"],
                "floor_parts": physics,
                "ratio": batch["job_s_mean"] / physics["total"],
                "naive_floor_s": floor_s(recipe, model)["total"] if blank else sequence_old(recipe, model),
                "ok": batch["ok"] == batch["flash_ok"] == 1,
            }
            if blank:
                floor[size] = entry
            else:
                floor[size]["old_image"] = entry
    figures["floor"] = floor

    # 2-4. scaling, latency, cost: the user's recipe, the ports spread over 8 root ports (8 each)
    recipe = make_recipe(IMAGE_SMALL)
    root_ports = max(1, -(-max(batches) // 8))
    big_n = max(batches)
    runs = batches + [big_n] * (max(1, args.big_repeats) - 1)
    scaling = trio.run(gangd_phase, recipe, runs, big_n, args.idle_s, False, root_ports)
    # The largest batch's rows give its median run, the others beside it (the runs, in order).
    big_runs = [run for n, run in zip(runs, scaling["runs"], strict=True) if n == big_n]
    scaling["batches"][big_n] = {**median_run(big_runs), "walls_s": [run["wall_s"] for run in big_runs]}
    figures["gangd"] = scaling
    figures["root_ports"] = root_ports
    # 16 boards behind one root port: admitted in waves of 8, none failed
    crowded = trio.run(gangd_phase, recipe, [args.crowded], args.crowded, 0.0)["batches"][args.crowded]
    figures["one_root_port"] = crowded
    # tracing every board: an untraced and a traced batch side by side (same load on the machine)
    figures["tracing"] = trace_cost(recipe, trace_n, root_ports, args.trace_rounds, args.trace_dir)
    one = scaling["batches"][batches[0]]["wall_s"]
    latencies = [lat for b in scaling["batches"].values() for lat in b["latencies_s"]]

    # 4b. CPU per MiB of image (time scale 0: only CPU counts), and the big batch at time scale 1
    cost = {size: measure_cost(size, args.cost_boards, 1, 0.0) for size in sizes(args.cost_sizes)}
    figures["cost_per_mib"] = cost
    large = None
    if args.large:
        large_roots = -(-args.large // 8)
        large = trio.run(gangd_phase, recipe, [args.large], args.large, 0.0, False, large_roots)
        figures["large"] = large
    # The same big batches with the jobs in worker processes ([station] workers)
    in_workers: dict[int, tuple[int, dict]] = {}
    if args.workers:
        for n in [max(batches)]:  # N=large again in workers took 70 s: its two batches of 34 s
            roots = -(-n // 8)
            run = trio.run(gangd_phase, recipe, [n], n, 0.0, False, roots, 1.0, (), args.workers)
            in_workers[n] = (roots, run["batches"][n])
        figures["workers"] = {"count": args.workers, "batches": {n: b for n, (_, b) in in_workers.items()}}

    # 4c. the bus: N boards on K controllers and R root ports against the serialised floor
    bus = bus_phase(gangd_phase, recipe, model, topologies(args.bus_rows), args.bus_repeats)
    figures["bus"] = bus

    # 5. peers
    # The peers run the user's own sequence, as the provisioning tool and a hand-written loop do.
    cli_s = sequential_per_board = None
    if not args.skip_peers:
        with tempfile.TemporaryDirectory() as tmp:
            cli_s = cli_peer(naive(recipe), Path(tmp))
        sequential_s = sequential_peer(naive(recipe), args.sequential_boards)
        sequential_per_board = sequential_s / args.sequential_boards
        figures["peers"] = {
            "cli_per_board_s": cli_s,
            "sequential_boards": args.sequential_boards,
            "sequential_s": sequential_s,
            "sequential_per_board_s": sequential_per_board,
        }
    figures["elapsed_s"] = time.monotonic() - started

    # --- the table ---
    rows = [calibration_row(calibration)]
    for size, blank_entry in floor.items():
        for label, f in (("blank", blank_entry), ("old image", blank_entry["old_image"])):
            rows.append(
                (
                    f"floor ratio, {size:,}-byte image, {label}",
                    f"{f['ratio']:.3f}",
                    f"gangd {f['gangd_s']:.3f} s / physics {f['floor_s']:.3f} s"
                    f" (naive sequence {f['naive_floor_s']:.3f} s)",
                    "<= 1.10",
                )
            )
    rows.append(
        (
            "blank RT1020, 45,056 bytes, per board",
            f"{floor[IMAGE_SMALL]['gangd_s']:.3f} s",
            "time scale 1 (was 1.66 s with the naive sequence)",
            "<= 0.75 s",
        )
    )
    for n, b in scaling["batches"].items():
        efficiency = one / b["wall_s"]
        per_hour = n / b["wall_s"] * 3600
        # Against one board alone: a bus that enumerates every board at once. With enumeration one
        # device at a time per controller no batch comes near it; the bus rows hold the targets.
        target = ""
        rows.append(
            (
                f"N={n:<3} boards/hour, efficiency",
                f"{efficiency:.3f}",
                f"{per_hour:,.0f} boards/h, batch {b['wall_s']:.2f} s, {b['ok']}/{n} ok, flash ok {b['flash_ok']}",
                target,
            )
        )
        b["efficiency"], b["boards_per_hour"] = efficiency, per_hour
    floor_one = floor[IMAGE_SMALL]["floor_s"]
    big_wall = scaling["batches"][big_n]["wall_s"]
    walls = scaling["batches"][big_n]["walls_s"]
    big_floor = bus_floor_s(recipe, model, big_n, root_ports, 1)
    floor_big = big_floor["total"]
    rows.append(
        (
            f"N={big_n} on 1 controller, {root_ports} root ports vs floor",
            f"{big_floor['total'] / big_wall:.3f}",
            f"{big_n / big_wall * 3600:,.0f} boards/h; serialised floor {big_floor['total']:.3f} s / batch"
            f" {big_wall:.3f} s, the median of {len(walls)} ({', '.join(f'{floor_big / w:.3f}' for w in walls)});"
            f" parallel floor {big_floor['parallel']:.3f} s (ratio {big_floor['parallel'] / big_wall:.3f})",
            ">= 0.90",
        )
    )
    for n, (roots, wb) in in_workers.items():
        rows.append(
            (
                f"N={n} on {roots} root ports vs floor, {args.workers} workers",
                f"{floor_one / wb['wall_s']:.3f}",
                f"{wb['ok']}/{n} ok, batch {wb['wall_s']:.2f} s, job mean {wb['job_s_mean']:.2f} s,"
                f" gangd CPU {wb['cpu_s']:.2f} s (workers included), simulator CPU {wb['sim_cpu_s']:.2f} s",
                ">= 0.90" if n == big_n else "",
            )
        )
        rows.append(
            (
                f"gangd PSS at N={n}, {args.workers} workers",
                f"{wb['pss_mb']:.0f} + {wb['pss_workers_mb']:.0f} MB",
                f"supervisor + its workers (RSS {wb['rss_mb']:.0f} + {wb['rss_workers_mb']:.0f} MB, shared pages counted"
                " in each)",
                f"<= {150 + n} MB",
            )
        )
    waves = -(-args.crowded // 8)
    wave_s = scaling["batches"].get(8, {}).get("wall_s") or floor_one
    rows.append(
        (
            f"N={args.crowded} on 1 root port (budget 8)",
            f"{crowded['wall_s'] / (waves * wave_s):.3f}",
            f"{crowded['ok']}/{args.crowded} ok, {crowded['failed']} failed, batch {crowded['wall_s']:.2f} s,"
            f" {args.crowded / crowded['wall_s'] * 3600:,.0f} boards/h vs {waves} waves of {wave_s:.2f} s",
            "<= 1.2",
        )
    )
    rows.append(
        ("hotplug -> first command p50", f"{percentile(latencies, 50) * 1000:.1f} ms", f"{len(latencies)} boards", "")
    )
    rows.append(("hotplug -> first command p99", f"{percentile(latencies, 99) * 1000:.1f} ms", "", "<= 50 ms"))
    big = scaling["batches"][max(batches)]
    rows.append(("gangd CPU per board", f"{big['cpu_s'] / max(batches) * 1000:.1f} ms", f"at N={max(batches)}", ""))
    rows += trace_rows(figures["tracing"])
    rows.append(("gangd idle CPU", f"{scaling['idle_cpu_fraction'] * 100:.2f} %", f"over {args.idle_s:g} s", "< 1 %"))
    budget = 150 + 4 * max(batches)
    rows.append(
        (
            "gangd RSS idle / at N=max",
            f"{scaling['rss_idle_mb']:.0f} / {big['rss_mb']:.0f} MB",
            f"peak {scaling['rss_peak_mb']:.0f} MB",
            f"<= {budget} MB",
        )
    )
    for size, c in cost.items():
        rows.append(
            (
                f"gangd CPU per MiB, {size / IMAGE_LARGE:g} MiB image",
                f"{c['gangd_ms_per_mib']:.1f} ms",
                f"{c['boards']} boards, time scale 0, {c['flash_ok']}/{c['boards']} flash ok",
                "<= 15 ms",
            )
        )
        rows.append(
            (
                f"simulator CPU per MiB, {size / IMAGE_LARGE:g} MiB image",
                f"{c['sim_ms_per_mib']:.1f} ms",
                f"wall {c['wall_s']:.2f} s",
                "<= 15 ms",
            )
        )
    if large is not None:
        lb = large["batches"][args.large]
        large_roots = -(-args.large // 8)
        rows.append(
            (
                f"N={args.large} on {large_roots} root ports vs floor",
                f"{floor_one / lb['wall_s']:.3f}",
                f"{lb['ok']}/{args.large} ok, batch {lb['wall_s']:.2f} s, gangd CPU {lb['cpu_s']:.2f} s,"
                f" simulator CPU {lb['sim_cpu_s']:.2f} s",
                "",
            )
        )
        rows.append(
            (
                f"gangd RSS at N={args.large}",
                f"{lb['rss_mb']:.0f} MB",
                f"peak {large['rss_peak_mb']:.0f} MB",
                f"<= {150 + args.large} MB",
            )
        )
    per_board = scaling["batches"][1]["job_s_mean"]
    if cli_s is not None:
        rows.append(
            (
                "vs CLI flow, per board",
                f"{cli_s / per_board:.2f}x",
                f"CLI {cli_s:.2f} s, gangd {per_board:.2f} s",
                ">= 3x",
            )
        )
    for n, b in scaling["batches"].items():
        if sequential_per_board is None:
            break
        speedup = sequential_per_board * n / b["wall_s"]
        rows.append(
            (
                f"vs sequential spsdk loop, N={n}",
                f"{speedup:.2f}x",
                f"loop {sequential_per_board:.2f} s/board x {n}",
                "",  # was 0.9 N: a gang on one controller is bound by its enumeration queue (bus rows)
            )
        )
        b["speedup_vs_sequential"] = speedup
    rows += bus_rows(bus, calibration)
    print_table(rows)
    print(f"(whole benchmark: {figures['elapsed_s']:.0f} s; figures in {args.json})")
    Path(args.json).write_text(json.dumps(figures, indent=1, default=str))
    return 0
