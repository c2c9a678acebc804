"""NXP's own tools on their USB path (`blhost -u`, `sdphost -u`: spsdk, libusbsio, hidapi's hidraw
backend, libudev) against simulated boards behind emulated /dev/hidrawN nodes, unchanged.

The commands are the user's logged ones. One board per simulator: `-u VID,PID` alone names it.
"""

from __future__ import annotations

import json
import os

from gangd.sim.images import build_flashloader_image

from .conftest import FLASHLOADER_IDS, ROM_IDS

BLHOST = ("blhost", "-u", "0x15A2,0x0073", "-j", "--")
SDPHOST = ("sdphost", "-u", "0x1FC9,0x0130", "-j", "--")


def status(result) -> int:
    """The status value of a `-j` (JSON) run."""
    return json.loads(result.stdout)["status"]["value"]


def test_blhost_runs_the_users_commands_over_hidraw(hidraw_sim, tmp_path):
    sim = hidraw_sim("--stage", "flashloader")
    app = os.urandom(45056)
    (tmp_path / "app.bin").write_bytes(app)
    blhost = BLHOST[0]

    assert status(sim.tool(blhost, "-t", "5000", *BLHOST[1:], "fill-memory", "0x2000", "4", "0xC0000007", "word")) == 0
    assert status(sim.tool(*BLHOST, "configure-memory", "9", "0x2000")) == 0
    assert status(sim.tool(blhost, "-t", "50450", *BLHOST[1:], "flash-erase-region", "0x60000000", "45056", "0")) == 0
    assert status(sim.tool(*BLHOST, "write-memory", "0x60000000", str(tmp_path / "app.bin"))) == 0
    assert status(sim.tool(*BLHOST, "read-memory", "0x60000000", "45056", str(tmp_path / "back.bin"))) == 0
    assert (tmp_path / "back.bin").read_bytes() == app
    # The board told the host its USB packet size (1012 bytes: a 1016-byte report less the header).
    assert json.loads(sim.tool(*BLHOST, "get-property", "11").stdout)["response"] == [1012]
    # Still the one node it enumerated with: nothing above left the bus.
    assert [e["action"] for e in sim.events] == ["add"]


def test_sdphost_loads_the_flashloader_which_reenumerates_on_a_new_node(hidraw_sim, tmp_path):
    sim = hidraw_sim()
    image, jump = build_flashloader_image(load_address=0x2000_0000)
    (tmp_path / "ivt_flashloader.bin").write_bytes(image)
    _, rom = sim.wait_event("add", "1-1.1", ROM_IDS)
    before = sim.scan()["1-1.1"]
    assert before[:2] == ["1fc9:0130", "rom"] and before[3] == rom["devnode"]

    write = sim.tool(*SDPHOST, "write-file", "0x20000000", str(tmp_path / "ivt_flashloader.bin"))
    assert "Write File Success" in write.stdout
    assert "Hab Is Disabled" in sim.tool(*SDPHOST, "jump-address", hex(jump)).stdout

    gone, _ = sim.wait_event("remove", "1-1.1", ROM_IDS)
    _, loader = sim.wait_event("add", "1-1.1", FLASHLOADER_IDS, after=gone)
    after = sim.scan()["1-1.1"]
    assert after[:2] == ["15a2:0073", "flashloader"]
    assert after[3] == loader["devnode"] != rom["devnode"]  # a new hidrawN on the same port
    assert after[4] == before[4] == "SIM000001"  # the same board
    assert "Current Version = K1.6.0" in sim.tool("blhost", "-u", "0x15A2,0x0073", "--", "get-property", "1").stdout


PROVISIONING_SCRIPT = """\
#!/bin/sh
# i.MX RT1020: load the flashloader, program the FlexSPI NOR image, reset.
# Written the way the provisioning tool writes its scripts: one sdphost/blhost call per step.
set -e
cd "$(dirname "$0")"
sdphost -u 0x1FC9,0x0130 -j -- write-file 0x20000000 ivt_flashloader.bin
sdphost -u 0x1FC9,0x0130 -j -- jump-address 0x20000400
blhost -t 5000 -u 0x15A2,0x0073 -j -- fill-memory 0x2000 4 0xC0000007 word
blhost -t 5000 -u 0x15A2,0x0073 -j -- configure-memory 9 0x2000
blhost -t 50450 -u 0x15A2,0x0073 -j -- flash-erase-region 0x60000000 45056 0
blhost -t 5000 -u 0x15A2,0x0073 -j -- write-memory 0x60000000 app.bin
blhost -t 5000 -u 0x15A2,0x0073 -j -- read-memory 0x60000000 45056 readback.bin
cmp app.bin readback.bin
blhost -t 5000 -u 0x15A2,0x0073 -j -- reset
"""


def test_a_provisioning_script_runs_unchanged_against_the_emulated_line(hidraw_sim, tmp_path):
    sim = hidraw_sim()
    (tmp_path / "ivt_flashloader.bin").write_bytes(build_flashloader_image(load_address=0x2000_0000)[0])
    (tmp_path / "app.bin").write_bytes(os.urandom(45056))
    script = tmp_path / "write_image.sh"
    script.write_text(PROVISIONING_SCRIPT)
    script.chmod(0o755)

    result = sim.run(str(script), timeout=120)
    assert result.stdout.count('"value": 0') >= 6  # every blhost step reported status 0

    # ROM -> flashloader after the jump, flashloader -> ROM after the reset: three nodes, one port.
    index, _ = sim.wait_event("add", "1-1.1", ROM_IDS)
    index, _ = sim.wait_event("add", "1-1.1", FLASHLOADER_IDS, after=index)
    index, back = sim.wait_event("add", "1-1.1", ROM_IDS, after=index)
    assert len({e["devnode"] for e in sim.events if e["action"] == "add"}) == 3
    assert sim.scan()["1-1.1"][:4] == ["1fc9:0130", "rom", "mimxrt1020", back["devnode"]]
