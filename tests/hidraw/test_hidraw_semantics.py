"""An emulated /dev/hidrawN behaves as the kernel's hidraw does, seen from a client process through
libudev and the plain system calls (hidraw_client.py)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from gangd.sim.hid_reports import FLASHLOADER_DESCRIPTOR
from gangd.sim.images import build_flashloader_image

from .conftest import GANGD

CLIENT = Path(__file__).with_name("hidraw_client.py")


def test_an_emulated_node_keeps_hidraw_semantics(hidraw_sim):
    sim = hidraw_sim("--stage", "flashloader")
    seen = json.loads(sim.run(sys.executable, str(CLIENT), timeout=60).stdout)

    # The sysfs chain libudev walks: usb_device named by its port path > interface > hid > hidraw.
    assert seen["udev"] == {
        "port": "1-1.1",
        "ids": ["15a2", "0073"],
        "serial": "SIM000001",
        "interface": "00",
        "hid_id": "0003:000015A2:00000073",
        "report_descriptor": FLASHLOADER_DESCRIPTOR.hex(),
    }
    assert seen["stat"][:2] == [True, 240]  # a character device
    # ioctls: ids (bus USB), the report descriptor, name / phys / uniq as hidraw copies them
    assert seen["rawinfo"] == [3, 0x15A2, 0x0073]
    assert seen["rdesc"] == [76, FLASHLOADER_DESCRIPTOR.hex()]
    assert "flashloader" in seen["name"] and seen["phys"].endswith("-1.1/input0") and seen["uniq"] == "SIM000001"
    assert bytes.fromhex(seen["name_cut"]) == seen["name"].encode()[:4]
    # reads and writes: EAGAIN when empty, one report per read with its id first, every handle
    # gets every report, cut to the reader's buffer
    assert seen["empty_read"] == "EAGAIN" and seen["short_write"] == "EINVAL"
    assert seen["written"] == 12 and seen["poll"] & 1  # POLLIN
    assert seen["reply"][:2] == [1016, 3] and seen["then"] == "EAGAIN"
    assert seen["second_cut"] == seen["reply"][2][:16] and seen["second_then"] == "EAGAIN"
    # gone: the queued reply first, then EIO; writes and ioctls ENODEV; poll says POLLERR|POLLHUP
    assert seen["gone_poll"] and not seen["node_exists"]
    assert seen["late_reply"] == [1016, 3, 0xA0]  # the generic response to the reset
    assert seen["after_late"] == "EIO"
    assert seen["write_gone"] == "ENODEV" and seen["ioctl_gone"] == "ENODEV"
    # the board re-enumerates (the ROM after the reset) on the same port, on a new node
    assert seen["events"] == ["remove", "add"]
    assert seen["back"]["port"] == "1-1.1" and seen["back"]["ids"] == "0130"
    assert seen["back"]["node"] != seen["devnode"]


def test_the_emulated_line_sits_on_the_controllers_asked_for(hidraw_sim, tmp_path):
    """`--controllers 2 --root-ports 2`: two buses, each under a PCI function of its own in the
    testbed's sysfs, so `gangd scan` reads two host controllers, as the simulator enumerates."""
    sim = hidraw_sim("--hub", "4", "--root-ports", "2", "--controllers", "2")
    for port in ("1-1.1", "1-1.2", "2-1.1", "2-1.2"):
        sim.wait_event("add", port)
    out = sim.run(GANGD, "scan", "--family", "mimxrt1020").stdout
    assert "2 USB host controllers, 2 root ports\n" in out
    assert "controller 0000:00:14.0: 1-1 (2 ports)\n" in out
    assert "controller 0000:02:00.0: 2-1 (2 ports)\n" in out
    assert "floor for this recipe" not in out  # no recipe named
    # the example line, with the files it names
    shutil.copy(Path(__file__).parents[2] / "config" / "rt1020.toml", tmp_path / "line.toml")
    (tmp_path / "ivt_flashloader.bin").write_bytes(build_flashloader_image()[0])
    (tmp_path / "app.bin").write_bytes(bytes(45056))
    config = str(tmp_path / "line.toml")
    out = sim.run(GANGD, "scan", "--family", "mimxrt1020", "--config", config).stdout
    assert "floor for this recipe: 4 boards plugged at once done in " in out
