"""The user's provisioning flow, step by step, with spsdk's own clients over gangd's transport."""

from __future__ import annotations

from contextlib import contextmanager

from gangd.io.transport import FdHidDevice, mboot_client, sdp_client

RT1020_ROM_PID = 0x0130
RT1020_FLASHLOADER_PID = 0x0073


@contextmanager
def _open(make_client, devnode: str, timeout_ms: int):
    device = FdHidDevice(devnode, timeout=timeout_ms)
    client = make_client(device)
    client.open()
    try:
        yield client
    finally:
        client.close()
        device.dispose()


def open_sdp(devnode: str, timeout_ms: int = 2000):
    return _open(sdp_client, devnode, timeout_ms)


def open_mboot(devnode: str, timeout_ms: int = 2000):
    return _open(mboot_client, devnode, timeout_ms)


def load_flashloader(events, port: str, image: bytes, jump: int, timeout: float = 10) -> str:
    """ROM: write the flashloader and jump; returns the flashloader's devnode on the same port."""
    rom = events.next(port, "add", pid=RT1020_ROM_PID)
    with open_sdp(rom.devnode) as sdp:
        assert sdp.write_file(0x2000_0000, image)
        sdp.jump_and_run(jump)
    events.next(port, "remove", pid=RT1020_ROM_PID)
    return events.next(port, "add", pid=RT1020_FLASHLOADER_PID, timeout=timeout).devnode


def configure_flexspi(mboot) -> None:
    """The user's log: fill-memory 0x2000 4 0xC0000007 word; configure-memory 9 0x2000."""
    assert mboot.fill_memory(0x2000, 4, 0xC000_0007)
    assert mboot.configure_memory(0x2000, 9)
