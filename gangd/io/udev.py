"""Boards from udev: a coldplug scan, then a pyudev Monitor awaited by trio on its descriptor.

A board is named by its physical port: the sys_name of the `usb_device` above its hidraw node
(`1-1.3`). The hidraw node carries the device node to open; the usb_device carries the ids and the
serial. Removal is reported from either: the usb_device's own remove event, or the hidraw's (looked
up by the device node we saw added, since sysfs is already gone when a remove arrives).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import structlog
import trio

from gangd.config.family import UsbIds
from gangd.core.bus import is_port_path
from gangd.core.events import ADD, REMOVE, PortEvent

log = structlog.get_logger("gangd.hotplug")


def _hex_attr(device, name: str) -> int | None:
    try:
        return int(device.attributes.asstring(name), 16)
    except (KeyError, ValueError, UnicodeDecodeError):
        return None


class BoardFilter:
    """Which events gangd acts on: the configured families' NXP ids, the configured ports."""

    def __init__(self, ids: Iterable[UsbIds], ports: Iterable[str] = ()) -> None:
        self.ids = frozenset(ids)
        self.ports = frozenset(ports)

    def port_allowed(self, port: str) -> bool:
        return not self.ports or port in self.ports

    def ids_allowed(self, vid: int, pid: int) -> bool:
        return UsbIds(vid, pid) in self.ids


class UdevTranslator:
    """Turns pyudev devices into PortEvents, remembering device nodes so removals can be named."""

    def __init__(self, board_filter: BoardFilter) -> None:
        self.filter = board_filter
        self._nodes: dict[str, PortEvent] = {}  # hidraw devnode -> the add event that named it
        self._ports: dict[str, PortEvent] = {}  # port -> its current add event

    def translate(self, device, action: str) -> PortEvent | None:
        if device.subsystem == "hidraw":
            return self._hidraw(device, action)
        if device.subsystem == "usb" and device.device_type == "usb_device" and action == REMOVE:
            return self._usb_removed(device)
        return None

    def _hidraw(self, device, action: str) -> PortEvent | None:
        devnode = device.device_node
        if action == REMOVE:
            added = self._nodes.pop(devnode, None) if devnode else None
            if added is None:
                return None
            if self._ports.get(added.port) is added:
                del self._ports[added.port]
            return PortEvent(REMOVE, added.port, added.vid, added.pid, added.serial, devnode)
        if action not in (ADD, "change", "bind"):
            return None
        usb = device.find_parent("usb", "usb_device")
        if usb is None or devnode is None:
            return None
        port = usb.sys_name
        vid, pid = _hex_attr(usb, "idVendor"), _hex_attr(usb, "idProduct")
        if vid is None or pid is None or not is_port_path(port):
            log.warning("hidraw node without usable usb parent skipped", devnode=devnode, usb=port)
            return None
        if not self.filter.ids_allowed(vid, pid):
            log.debug("not an NXP board of the configured families", port=port, ids=f"{vid:04x}:{pid:04x}")
            return None
        if not self.filter.port_allowed(port):
            log.warning("board on a port outside the configuration skipped", port=port, ids=f"{vid:04x}:{pid:04x}")
            return None
        try:
            serial = usb.attributes.asstring("serial")
        except KeyError:
            serial = None
        event = PortEvent(ADD, port, vid, pid, serial, devnode)
        if self._nodes.get(devnode) == event:
            return None  # the same node seen twice (coldplug racing the monitor)
        self._nodes[devnode] = event
        self._ports[port] = event
        return event

    def _usb_removed(self, device) -> PortEvent | None:
        added = self._ports.pop(device.sys_name, None)
        if added is None:
            return None
        self._nodes.pop(added.devnode or "", None)
        return PortEvent(REMOVE, added.port, added.vid, added.pid, added.serial, added.devnode)


class UdevSource:
    """Coldplug, then live events, into `send` (a trio memory channel's send side)."""

    def __init__(self, board_filter: BoardFilter, context=None) -> None:
        import pyudev

        self.context = context or pyudev.Context()
        self.translator = UdevTranslator(board_filter)

    def coldplug(self) -> list[PortEvent]:
        events = []
        for device in self.context.list_devices(subsystem="hidraw"):
            event = self.translator.translate(device, ADD)
            if event is not None:
                events.append(event)
        return events

    async def run(self, emit: Callable[[PortEvent], None], *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        import pyudev

        monitor = pyudev.Monitor.from_netlink(self.context, source="udev")
        monitor.filter_by("hidraw")
        monitor.filter_by("usb", "usb_device")
        monitor.start()  # listen before the scan, so nothing plugged in between is missed
        for event in self.coldplug():
            emit(event)
        task_status.started()
        while True:
            await trio.lowlevel.wait_readable(monitor.fileno())
            while (device := monitor.poll(timeout=0)) is not None:
                change = self.translator.translate(device, device.action or "")
                if change is not None:
                    emit(change)
