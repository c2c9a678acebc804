"""The ROM stage: NXP's Serial Download Protocol (SDP) as the i.MX RT boot ROM speaks it.

Every command is answered first with the HAB state (open: 0x56787856, closed: 0x12343412), then
with a status word or data. WRITE_FILE / WRITE_DCD carry a data phase; JUMP_ADDRESS to a valid
image vector table makes the board leave the bus and come back as the flashloader.
Reference: spsdk `sdp/sdp.py` and `sdp/commands.py` (host side of the same exchanges).
"""

from __future__ import annotations

import struct

from spsdk.sdp.commands import CommandTag, ResponseValue

from gangd.config.bootimage import BOOT_DATA_SIZE, IVT_SIZE, boot_image_problem, parse_ivt
from gangd.sim.board import FLASHLOADER, LeaveStage, SimBoard, Unplugged
from gangd.sim.links import LinkClosed

# Values the ROM answers with when something goes wrong (HAB status words).
HAB_FAILURE = 0x33333333  # jump refused: no valid IVT, or unsigned image on a closed part
WRITE_FAILURE = 0x12345678  # write to an address the ROM will not write

NAMES = {
    CommandTag.READ_REGISTER.tag: "read-register",
    CommandTag.WRITE_REGISTER.tag: "write-register",
    CommandTag.WRITE_FILE.tag: "write-file",
    CommandTag.ERROR_STATUS.tag: "error-status",
    CommandTag.WRITE_CSF.tag: "write-csf",
    CommandTag.WRITE_DCD.tag: "write-dcd",
    CommandTag.SKIP_DCD_HEADER.tag: "skip-dcd-header",
    CommandTag.JUMP_ADDRESS.tag: "jump-address",
}


class RomEngine:
    def __init__(self, board: SimBoard, link) -> None:
        self.board = board
        self.link = link

    @property
    def hab(self) -> int:
        return ResponseValue.LOCKED.tag if self.board.hab_closed else ResponseValue.UNLOCKED.tag

    def serve(self) -> None:
        """Answer commands until the host goes away (LinkClosed) or the board leaves (LeaveStage)."""
        while True:
            raw = self.link.recv_command()
            self.board.command_arrived()
            tag, address, data_format, count, value, _ = struct.unpack(">HIB2IB", raw)
            name = NAMES.get(tag, f"0x{tag:04x}")
            args = (address, data_format, count, value)
            if self._injected(name, args, count):
                continue
            handler = getattr(self, "_" + name.replace("-", "_"), None)
            if handler is None:
                # The ROM answers an unknown command with the HAB state and nothing else.
                self.board.record(name, args, None)
                self.link.send_hab(self.hab)
                continue
            handler(address, data_format, count, value)

    def _injected(self, name: str, args: tuple[int, ...], count: int) -> bool:
        faults = self.board.faults
        if self.board.hung or faults.fire("hang", name):
            self.board.hung = True
        if self.board.hung or faults.fire("no-response", name):
            self.board.record(name, args, None)
            if name in ("write-file", "write-dcd", "write-csf"):
                self.link.recv_data(count)  # swallow the data phase too
            return True
        if faults.fire("disconnect", name):
            self.board.record(name, args, None)
            raise Unplugged(f"unplugged during {name}")
        rule = faults.fire("status", name)
        if rule is not None:
            if name in ("write-file", "write-dcd", "write-csf"):
                self.link.recv_data(count)
            self.board.record(name, args, rule.code)
            self.board.sdp_error = rule.code or 0
            self.link.send_hab(self.hab)
            self.link.send_status(rule.code or 0)
            return True
        return False

    # --- memory access ------------------------------------------------------------------------

    def _writable(self, address: int, length: int) -> bool:
        return any(r.contains(address, length) for r in self.board.family.ram_regions)

    def _read_register(self, address: int, data_format: int, count: int, value: int) -> None:
        region = self.board.family.region_at(address, count)
        if region is not None and not region.external:
            data = self.board.ram.read(address, count)
        else:
            data = bytes(count)  # peripheral space reads as zeros here
        self.board.record("read-register", (address, data_format, count), 0)
        self.link.send_hab(self.hab)
        self.link.send_data(data)

    def _write_register(self, address: int, data_format: int, count: int, value: int) -> None:
        width = max(1, min(count, 4))
        ok = self._writable(address, width)
        if ok:
            self.board.ram.write(address, value.to_bytes(4, "little")[:width])
        status = ResponseValue.WRITE_DATA_OK.tag if ok else WRITE_FAILURE
        self.board.record("write-register", (address, data_format, count, value), 0 if ok else status)
        self.link.send_hab(self.hab)
        self.link.send_status(status)

    def _write_file(self, address: int, data_format: int, count: int, value: int) -> None:
        data = self.link.recv_data(count)
        ok = self._writable(address, count)
        if ok:
            self.board.ram.write(address, data)
        else:
            self.board.sdp_error = WRITE_FAILURE
        self.board.record("write-file", (address, count), 0 if ok else WRITE_FAILURE)
        self.link.send_hab(self.hab)
        self.link.send_status(ResponseValue.WRITE_FILE_OK.tag if ok else WRITE_FAILURE)

    def _write_dcd(self, address: int, data_format: int, count: int, value: int) -> None:
        # The DCD programs SoC registers (clocks, SDRAM); RAM-only simulation accepts and logs it.
        self.link.recv_data(count)
        self.board.record("write-dcd", (address, count), 0)
        self.link.send_hab(self.hab)
        self.link.send_status(ResponseValue.WRITE_DATA_OK.tag)

    def _write_csf(self, address: int, data_format: int, count: int, value: int) -> None:
        data = self.link.recv_data(count)
        ok = self._writable(address, count)
        if ok:
            self.board.ram.write(address, data)
        self.board.record("write-csf", (address, count), 0 if ok else WRITE_FAILURE)
        self.link.send_hab(self.hab)
        self.link.send_status(ResponseValue.WRITE_DATA_OK.tag if ok else WRITE_FAILURE)

    def _skip_dcd_header(self, address: int, data_format: int, count: int, value: int) -> None:
        self.board.record("skip-dcd-header", (), 0)
        self.link.send_hab(self.hab)
        self.link.send_status(ResponseValue.SKIP_DCD_HEADER_OK.tag)

    def _error_status(self, address: int, data_format: int, count: int, value: int) -> None:
        status = self.board.sdp_error or ResponseValue.HAB_SUCCESS.tag
        self.board.record("error-status", (), 0)
        self.link.send_hab(self.hab)
        self.link.send_status(status)

    # --- leaving the ROM ----------------------------------------------------------------------

    def _jump_address(self, address: int, data_format: int, count: int, value: int) -> None:
        reason = self._check_image(address)
        self.link.send_hab(self.hab)
        if reason:
            # The refusal is kept for error-status: hosts read only the HAB word after a jump,
            # so a status report here would be read as the answer to their next command.
            self.board.sdp_error = HAB_FAILURE
            self.board.record("jump-address", (address,), HAB_FAILURE)
            return
        self.board.record("jump-address", (address,), 0)
        ivt = parse_ivt(self.board.ram.read(address, IVT_SIZE))
        assert ivt is not None
        start, length, _ = struct.unpack("<3I", self.board.ram.read(ivt.boot_data, BOOT_DATA_SIZE))
        self.board.reserved = (start, start + length)
        reappear = self.board.faults.fire("no-reenumerate") is None
        raise LeaveStage(FLASHLOADER, reappear=reappear)

    def _check_image(self, address: int) -> str:
        """Why the ROM refuses to jump here, or "" when the image is good: the same check as
        `gangd check-config` makes on the flashloader file (gangd/config/bootimage.py)."""

        def read(at: int, length: int) -> bytes | None:
            return self.board.ram.read(at, length) if self._writable(at, length) else None

        reason = boot_image_problem(read, address, "RAM")
        if reason:
            return reason
        ivt = parse_ivt(self.board.ram.read(address, IVT_SIZE))
        assert ivt is not None  # boot_image_problem found an IVT there
        # HAB authenticates the image here (sim/hab.py); open parts run it whatever the outcome.
        report = self.board.hab.authenticate(self.board.ram.read, address)
        self.board.hab.boot_report = report
        if self.board.hab_closed and report.events:
            return "closed part, HAB authentication failed: " + "; ".join(report.events)
        return ""


__all__ = ["LinkClosed", "RomEngine"]
