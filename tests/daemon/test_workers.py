"""Jobs in worker processes (gangd/station/workers.py): real processes started with
`python -m gangd.service.worker`, boards on the simulated hub (their devnodes are sockets any
process opens), the supervisor's records, per-board data, power and bandwidth."""

from __future__ import annotations

import dataclasses
import os
import select
import signal

import pytest
import trio

from gangd.config.recipe import BoardData, builtin_rt1020
from gangd.core.bus import root_port
from gangd.service.worker import command
from gangd.sim import BoardFactory, TimingModel
from gangd.station.workers import WorkerPool

from ..support import Process, simulated_run

SERIAL_AT = 0x6010_0000


def pool(count: int = 2) -> WorkerPool:
    return WorkerPool(count, command("warning", "warning", None))


@pytest.mark.trio
async def test_jobs_run_in_worker_processes_one_worker_per_root_port(line, recipe, store):
    workers = pool(2)
    run = await line(8, hub_options={"root_ports": 2}, station_options={"workers": workers})
    results = await run.wait_results(8)
    assert {r.result for r in results} == {"success"}
    for result in results:
        assert run.hub.board(result.port).flash_image(recipe.images[0].address, len(recipe.images[0].data)) == (
            recipe.images[0].data
        )
    status = workers.status()
    assert all(entry["pid"] != os.getpid() and entry["alive"] for entry in status)
    assert sorted(entry["jobs_run"] for entry in status) == [4, 4]  # a root port's 4 ports each
    assert sorted(tuple(entry["root_ports"]) for entry in status) == [("1-1",), ("1-2",)]
    for port in run.hub.ports:
        assert root_port(port) in status[workers.index_of(port)]["root_ports"]
    # The supervisor keeps the records: one complete row per board, the job ids unique.
    rows = store.jobs()
    assert sorted(row["result"] for row in rows) == ["success"] * 8
    assert len({r.job_id for r in results}) == 8
    assert run.station.status()["workers"] == status


@pytest.mark.trio
async def test_per_board_values_are_taken_by_the_supervisor_once_each(line, recipe, store):
    serial = BoardData("serial", "counter", format="SN-{:06d}", start=7, step=1, address=SERIAL_AT, size=16)
    run = await line(
        6,
        recipe_override=dataclasses.replace(recipe, board_data=(serial,)),
        hub_options={"root_ports": 3},
        station_options={"workers": pool(3)},
    )
    results = await run.wait_results(6)
    assert {r.result for r in results} == {"success"}
    values = sorted(r.board_data["serial"] for r in results)
    assert values == [f"SN-{n:06d}" for n in range(7, 13)]
    for result in results:
        value = result.board_data["serial"].encode()
        assert run.hub.board(result.port).flash_image(SERIAL_AT, 16) == value + b"\xff" * (16 - len(value))
    assert sorted(a["value"] for a in store.allocations()) == values


@pytest.mark.trio
async def test_a_killed_worker_leaves_its_job_stopped_with_the_reason_and_a_new_worker_takes_the_next_board(
    line, recipe, store, rt1020
):
    workers = pool(1)
    serial = BoardData("serial", "counter", format="SN-{:06d}", start=1, step=1, address=SERIAL_AT, size=16)
    # Real time: the job is in its write step long enough to be killed there.
    run = await line(
        1,
        timing=TimingModel(time_scale=1),
        recipe_override=dataclasses.replace(recipe, board_data=(serial,)),
        station_options={"workers": workers},
    )
    port = run.station.ports["1-1.1"]
    await run.until(lambda: port.step == "write")
    (victim,) = workers.pids()
    os.kill(victim, signal.SIGKILL)
    (result,) = await run.wait_results(1)
    assert result.result == "stopped"
    assert result.reason == "the worker process running this job was killed by signal 9"
    (row,) = store.jobs()
    assert (row["result"], row["reason"]) == ("stopped", result.reason)
    # The value it was given before the worker died stays its, in its record: never issued again.
    assert row["board_data"] == {"serial": "SN-000001"} == result.board_data
    # The job's admission ended with it (its flashloader, still on the bus, keeps counting).
    assert port.state == "idle" and run.station.admission.admitted == set()
    # The operator takes the board out and puts the next one in: a fresh worker programs it.
    run.hub.unplug("1-1.1")
    run.hub.plug("1-1.1", BoardFactory(rt1020, TimingModel(time_scale=0), seed=5)())
    results = await run.wait_results(2)
    assert results[1].result == "success" and results[1].board_data == {"serial": "SN-000002"}
    assert workers.started == 2 and workers.pids() != [victim]


@pytest.mark.trio
async def test_stopping_reaches_the_jobs_in_workers_at_their_next_step(line, recipe, store):
    run = await line(1, timing=TimingModel(time_scale=1), station_options={"workers": pool(1)})
    port = run.station.ports["1-1.1"]
    await run.until(lambda: port.step == "wait-replug")
    run.station.stop()
    (result,) = await run.wait_results(1)
    assert result.result == "stopped" and "gangd is stopping" in result.reason
    assert store.jobs()[0]["result"] == "stopped"
    with trio.fail_after(10):
        await run.station.wait_jobs_done()


@pytest.mark.trio
async def test_a_board_pulled_in_a_workers_job_ends_removed_and_the_port_takes_the_next_board(
    line, recipe, store, rt1020
):
    run = await line(1, timing=TimingModel(time_scale=1), station_options={"workers": pool(1)})
    port = run.station.ports["1-1.1"]
    await run.until(lambda: port.step == "write")
    run.hub.unplug("1-1.1")
    (result,) = await run.wait_results(1)
    assert result.result == "removed"
    # The job read the board's removal in its worker; the station's port holds no board now and
    # the next one plugged in gets its job (the port's events were handed back in order).
    assert port.attached is None
    run.hub.plug("1-1.1", BoardFactory(rt1020, TimingModel(time_scale=0), seed=6)())
    results = await run.wait_results(2)
    assert results[1].result == "success"


def simulated_gangd(processes, tmp_path) -> Process:
    return processes(simulated_run(4, tmp_path, "--root-ports", "2", "--workers", "2"))


def worker_pids(process: Process) -> list[int]:
    return [e["pid"] for e in process.json_lines() if e["event"] == "worker process started"]


def programmed_on_each_port(process: Process) -> bool:
    ports = {e["port"] for e in process.json_lines() if e["event"] == "job finished" and e["result"] == "success"}
    return len(ports) == 4


def test_gangd_run_with_workers_programs_each_root_port_in_its_worker_and_stops_on_sigterm(processes, tmp_path):
    process = simulated_gangd(processes, tmp_path)
    process.wait_until(programmed_on_each_port, 60, "a programmed board on each of the four ports")
    pids = worker_pids(process)
    assert len(pids) == 2 and process.process.pid not in pids
    assert process.stop() == 0, process.stderr
    finished = [e for e in process.json_lines() if e["event"] == "job finished"]
    # Each job's lines come from its root port's worker: 1-1.x on one, 1-2.x on the other.
    workers = {(e["port"].split(".")[0], e["worker"]) for e in finished}
    assert {w for _, w in workers} == {0, 1} and len(workers) == 2, workers
    for pid in pids:  # reaped by gangd before it exited
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_sigkilled_gangd_leaves_no_worker_behind(processes, tmp_path):
    process = simulated_gangd(processes, tmp_path)
    process.wait_until(programmed_on_each_port, 60, "a programmed board on each of the four ports")
    pids = worker_pids(process)
    handles = [os.pidfd_open(pid) for pid in pids]  # readable once the process has exited
    try:
        process.process.kill()
        process.process.wait()
        for handle in handles:
            readable, _, _ = select.select([handle], [], [], 30)
            assert readable, "a worker outlived its supervisor by 30 s"
    finally:
        for handle in handles:
            os.close(handle)


@pytest.mark.trio
async def test_a_reloaded_recipe_reaches_the_workers_for_the_next_jobs(line, recipe, rt1020, flashloader_image):
    run = await line(1, station_options={"workers": pool(1)})
    (first,) = await run.wait_results(1)
    assert first.result == "success"
    new_image = bytes(range(256)) * 64
    loader, jump = flashloader_image
    run.station.recipe = builtin_rt1020(new_image, loader, jump, deadlines=recipe.deadlines)  # as SIGHUP does
    run.hub.unplug("1-1.1")
    run.hub.plug("1-1.1", BoardFactory(rt1020, TimingModel(time_scale=0), seed=8)())
    results = await run.wait_results(2)
    assert results[1].result == "success"
    assert run.hub.board("1-1.1").flash_image(0x6000_0000, len(new_image)) == new_image
