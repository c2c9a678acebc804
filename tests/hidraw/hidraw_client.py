"""Runs under `umockdev-wrapper` against `gangd sim --hidraw --stage flashloader` (one board): uses
its /dev/hidrawN the way hidraw's users do (libudev, open, ioctl, poll, read, write) and prints what
it saw as one JSON object, asserted by test_hidraw_semantics.py.

Plain os/fcntl/select calls on purpose: this is the kernel interface, not gangd's transport.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import select
import stat
import struct

import pyudev

HIDIOCGRDESCSIZE, HIDIOCGRDESC, HIDIOCGRAWINFO = 0x80044801, 0x90044802, 0x80084803


def hidiocgraw(nr: int, length: int = 256) -> int:
    return (2 << 30) | (length << 16) | (ord("H") << 8) | nr


def mboot_command(tag: int, *params: int) -> bytes:
    """One command-out report as blhost frames it (without hidapi's padding)."""
    packet = struct.pack(f"<4B{len(params)}I", tag, 0, 0, len(params), *params)
    return struct.pack("<BBH", 1, 0, len(packet)) + packet


def error_of(call) -> str:
    try:
        call()
    except OSError as exc:
        return errno.errorcode[exc.errno]
    return "no error"


def wait_readable(fd: int, timeout_ms: int = 5000) -> int:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    ready = poller.poll(timeout_ms)
    return ready[0][1] if ready else 0


def main() -> None:
    seen: dict = {}
    context = pyudev.Context()
    monitor = pyudev.Monitor.from_netlink(context, source="udev")
    monitor.filter_by("hidraw")
    monitor.start()

    (node,) = context.list_devices(subsystem="hidraw")
    usb = node.find_parent("usb", "usb_device")
    interface = node.find_parent("usb", "usb_interface")
    hid = node.find_parent("hid")
    devnode = node.device_node
    seen["udev"] = {
        "port": usb.sys_name,
        "ids": [usb.attributes.asstring("idVendor"), usb.attributes.asstring("idProduct")],
        "serial": usb.attributes.asstring("serial"),
        "interface": interface.attributes.asstring("bInterfaceNumber"),
        "hid_id": hid.properties["HID_ID"],
    }
    # Read as hidapi does (libudev's sysattr API stops at the first NUL byte).
    with open(os.path.join(hid.sys_path, "report_descriptor"), "rb") as sysattr:
        seen["udev"]["report_descriptor"] = sysattr.read().hex()
    st = os.stat(devnode)
    seen["stat"] = [stat.S_ISCHR(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev)]

    first = os.open(devnode, os.O_RDWR | os.O_NONBLOCK)
    second = os.open(devnode, os.O_RDWR | os.O_NONBLOCK)
    seen["rawinfo"] = list(struct.unpack("<IHH", fcntl.ioctl(first, HIDIOCGRAWINFO, bytes(8))))
    size = struct.unpack("<i", fcntl.ioctl(first, HIDIOCGRDESCSIZE, bytes(4)))[0]
    buffer = bytearray(struct.pack("<I", size) + bytes(4096))  # struct hidraw_report_descriptor
    fcntl.ioctl(first, HIDIOCGRDESC, buffer, True)
    descriptor = bytes(buffer[4 : 4 + size])
    seen["rdesc"] = [size, descriptor.hex()]
    seen["name"] = fcntl.ioctl(first, hidiocgraw(0x04), bytes(256)).rstrip(b"\0").decode()
    seen["phys"] = fcntl.ioctl(first, hidiocgraw(0x05), bytes(256)).rstrip(b"\0").decode()
    seen["uniq"] = fcntl.ioctl(first, hidiocgraw(0x08), bytes(256)).rstrip(b"\0").decode()
    seen["name_cut"] = fcntl.ioctl(first, hidiocgraw(0x04, 4), bytes(4)).hex()
    seen["empty_read"] = error_of(lambda: os.read(first, 1024))
    seen["short_write"] = error_of(lambda: os.write(first, b"\x01"))

    # One command through the first handle: every open handle gets the reply, one report per read.
    seen["written"] = os.write(first, mboot_command(0x07, 1))  # get-property CurrentVersion
    seen["poll"] = wait_readable(first)
    reply = os.read(first, 1024)
    seen["reply"] = [len(reply), reply[0], reply[:16].hex()]
    seen["then"] = error_of(lambda: os.read(first, 1024))
    wait_readable(second)
    seen["second_cut"] = os.read(second, 8).hex()  # a report cut to the reader's buffer ...
    seen["second_then"] = error_of(lambda: os.read(second, 1024))  # ... and the rest of it dropped
    os.close(second)

    # reset: the board answers and leaves. Nobody reads the answer until the node is gone.
    os.write(first, mboot_command(0x0B))
    poller = select.poll()
    poller.register(first, 0)  # no events asked: poll() returns on POLLERR / POLLHUP only
    ready = poller.poll(5000)
    seen["gone_poll"] = (
        bool(ready) and ready[0][1] & (select.POLLERR | select.POLLHUP) == select.POLLERR | select.POLLHUP
    )
    seen["node_exists"] = os.path.exists(devnode)
    late = os.read(first, 1024)
    seen["late_reply"] = [len(late), late[0], late[4]]  # report id, response tag
    seen["after_late"] = error_of(lambda: os.read(first, 1024))
    seen["write_gone"] = error_of(lambda: os.write(first, mboot_command(0x07, 1)))
    seen["ioctl_gone"] = error_of(lambda: fcntl.ioctl(first, HIDIOCGRAWINFO, bytes(8)))
    os.close(first)

    # The board comes back (the ROM, after the reset) on the same port, on a new node.
    events = []
    while len(events) < 2:
        device = monitor.poll(timeout=10)
        assert device is not None, f"no hidraw event within 10 s; saw {events}"
        events.append(device.action)
        if device.action == "add":
            seen["back"] = {
                "node": device.device_node,
                "port": device.find_parent("usb", "usb_device").sys_name,
                "ids": device.find_parent("usb", "usb_device").attributes.asstring("idProduct"),
            }
    seen["events"] = events
    seen["devnode"] = devnode
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
