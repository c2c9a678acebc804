"""Runs under `umockdev-wrapper`: builds a sysfs tree of a hub with NXP boards, sends their uevents,
and prints, as JSON lines, every PortEvent gangd's udev source produced. Driven by test_udev.py.

Real libudev, real pyudev, real netlink-style monitor socket: umockdev fakes only the kernel.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict

import gi

gi.require_version("UMockdev", "1.0")
import trio  # noqa: E402
from gi.repository import UMockdev  # noqa: E402

from gangd.config.family import load_family  # noqa: E402
from gangd.io.udev import BoardFilter, UdevSource  # noqa: E402

bed = UMockdev.Testbed.new()
counter = iter(range(100))


def usb_device(name, parent, vid, pid, serial=None):
    attributes = ["idVendor", f"{vid:04x}", "idProduct", f"{pid:04x}", "busnum", "1"]
    if serial:
        attributes += ["serial", serial]
    return bed.add_device("usb", name, parent, attributes, ["DEVTYPE", "usb_device", "PRODUCT", f"{vid:x}/{pid:x}/1"])


def board(port, vid, pid, serial=None, parent=None):
    """A USB HID board at `port`: usb_device > interface > hid > hidraw. Returns (usb, hidraw) syspaths."""
    usb = usb_device(port, parent or HUB, vid, pid, serial)
    interface = bed.add_device("usb", f"{port}:1.0", usb, ["bInterfaceClass", "03"], ["DEVTYPE", "usb_interface"])
    hid = bed.add_device("hid", f"0003:{vid:04X}:{pid:04X}.{next(counter):04X}", interface, [], [])
    n = next(counter)
    hidraw = bed.add_device("hidraw", f"hidraw{n}", hid, [], ["DEVNAME", f"/dev/hidraw{n}"])
    return usb, hidraw


def unplug(usb, hidraw):
    """What the kernel sends when a board leaves: hidraw goes first, then the usb_device."""
    bed.uevent(hidraw, "remove")
    bed.uevent(usb, "remove")
    bed.remove_device(usb)  # removes the children too ...
    # ... but leaves the /sys/bus/usb/devices links, which a re-enumeration on the same port
    # would collide with (the kernel removes them; umockdev 0.17 does not).
    name = os.path.basename(usb)
    for link in (name, f"{name}:1.0"):
        path = os.path.join(bed.get_sys_dir(), "bus", "usb", "devices", link)
        if os.path.islink(path):
            os.unlink(path)


ROOT = bed.add_device("usb", "usb1", None, ["busnum", "1"], ["DEVTYPE", "usb_device"])
HUB = usb_device("1-1", ROOT, 0x05E3, 0x0610)

family = load_family("mimxrt1020")
rom, flashloader = family.rom_usb[0], family.flashloader_usb[0]
configured_ports = [] if sys.argv[1:] == ["--all"] else sys.argv[1:] or ["1-1.1", "1-1.2", "1-1.3"]

# Already plugged in before gangd starts: found by the coldplug scan.
a_usb, a_raw = board("1-1.1", rom.vid, rom.pid, "A")
b_usb, b_raw = board("1-1.2", flashloader.vid, flashloader.pid, "B")
board("1-1.4", 0x046D, 0xC31C)  # a keyboard: not ours
board("1-1.7", rom.vid, rom.pid, "Z")  # an NXP board on a port outside the configuration


if sys.argv[1:] == ["--scan"]:
    from gangd.cli import main as gangd_main

    sys.exit(gangd_main(["scan", "--family", "mimxrt1020", "--family", "mimxrt1060"]))


async def main():
    seen = []
    source = UdevSource(BoardFilter(set(family.rom_usb) | set(family.flashloader_usb), configured_ports))
    send, receive = trio.open_memory_channel(100)

    async def collect(count):
        while len(seen) < count:
            with trio.fail_after(5):
                seen.append(await receive.receive())

    async with trio.open_nursery() as nursery:
        await nursery.start(source.run, send.send_nowait)
        await collect(2)  # coldplug
        print("phase coldplug", flush=True)
        # Board A re-enumerates: the ROM leaves, the flashloader appears on the same port.
        unplug(a_usb, a_raw)
        board("1-1.1", flashloader.vid, flashloader.pid, "A")
        await collect(4)
        # A new board on port 3, and board B pulled out.
        board("1-1.3", rom.vid, rom.pid, "C")
        unplug(b_usb, b_raw)
        await collect(7 if not configured_ports else 6)
        nursery.cancel_scope.cancel()
    for event in seen:
        print(json.dumps(asdict(event)), flush=True)


trio.run(main)
