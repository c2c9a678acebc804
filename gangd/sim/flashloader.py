"""The flashloader stage: the MCU bootloader protocol (what `blhost` speaks) on an i.MX RT part.

Commands, their packets and their status codes follow spsdk's host side (`mboot/mcuboot.py`,
`mboot/commands.py`, `mboot/error_codes.py`). RAM regions come from spsdk's memory map; the
serial NOR behind the FlexSPI window is driven by `flexspi_nor.py`, which follows NXP's FlexSPI NOR
driver rule by rule (configure before use, sector-widened erase verified at the read clock,
page-buffered writes that refuse unerased pages, reads at the configured clock).

`MISUSE` below is the one table of what the board answers to each misuse outside that driver.
"""

from __future__ import annotations

import struct

from spsdk.mboot.commands import CommandTag, ResponseTag
from spsdk.mboot.error_codes import StatusCode
from spsdk.mboot.properties import ExtMemPropTags

from gangd.sim.board import ROM, LeaveStage, SimBoard, Unplugged
from gangd.sim.faults import FaultRule
from gangd.sim.flexspi_nor import FlexspiNorDriver

FLEXSPI_NOR_MEMORY_ID = 9
AFTER_THE_FACT = StatusCode.FLEXSPINOR_COMMANDFAILURE.tag  # 20106: reported after the command ran

# Status a real flashloader returns for each misuse: one table, not scattered ifs.
MISUSE = {
    "unknown-command": StatusCode.UNKNOWN_COMMAND,  # 10000
    "outside-memory": StatusCode.MEMORY_RANGE_INVALID,  # 10200: no region, or beyond the NOR
    "reserved-region": StatusCode.MEMORY_RANGE_INVALID,  # 10200: the flashloader's own RAM
    "not-configured": StatusCode.MEMORY_NOT_CONFIGURED,  # 10205: FlexSPI used before configure
    "unknown-memory-id": StatusCode.INVALID_ARGUMENT,  # 4: configure/erase-all of another memory
    "unknown-property": StatusCode.UNKNOWN_PROPERTY,  # 10300
    "read-only-property": StatusCode.READ_ONLY_PROPERTY,  # 10301
    "otp-read": StatusCode.OCOTP_READ_FAILURE,  # 20200: fuse index out of range
    "otp-program": StatusCode.OCOTP_PROGRAM_FAILURE,  # 20201: out of range or locked word
}

# Tags the simulated flashloader implements; AvailableCommands reports exactly these.
NAMES = {
    CommandTag.FLASH_ERASE_ALL.tag: "flash-erase-all",
    CommandTag.FLASH_ERASE_REGION.tag: "flash-erase-region",
    CommandTag.READ_MEMORY.tag: "read-memory",
    CommandTag.WRITE_MEMORY.tag: "write-memory",
    CommandTag.FILL_MEMORY.tag: "fill-memory",
    CommandTag.GET_PROPERTY.tag: "get-property",
    CommandTag.RESET.tag: "reset",
    CommandTag.SET_PROPERTY.tag: "set-property",
    CommandTag.FLASH_PROGRAM_ONCE.tag: "efuse-program-once",
    CommandTag.FLASH_READ_ONCE.tag: "efuse-read-once",
    CommandTag.CONFIGURE_MEMORY.tag: "configure-memory",
}
AVAILABLE_COMMANDS = sum(1 << (tag - 1) for tag in NAMES)

CURRENT_VERSION = (ord("K") << 24) | (1 << 16) | (6 << 8)  # K1.6.0
PERIPHERALS_UART_USBHID = 0x11
SYSTEM_DEVICE_IDENT = 0x1020_0000
# Bytes of a write data phase collected before the FlexSPI driver programs them (our choice: the
# driver's cost is per call, the flash's per page; 64 KiB keeps the calls few and the memory small).
WRITE_BATCH = 64 * 1024


# get-property tag of the simulated flashloader's HAB report (gangd's default proof_property).
HAB_REPORT_PROPERTY = 0xF0


class DataPhaseInterrupted(Exception):
    """A new command arrived in the middle of a data phase: the host gave up on the old one."""

    def __init__(self, payload: bytes) -> None:
        super().__init__()
        self.payload = payload


def generic(status: int, cmd_tag: int) -> bytes:
    return struct.pack("<4B2I", ResponseTag.GENERIC.tag, 0, 0, 2, status, cmd_tag)


class FlashloaderEngine:
    def __init__(self, board: SimBoard, link) -> None:
        self.board = board
        self.link = link
        # The FlexSPI driver lives as long as the flashloader runs: a new handle (a new blhost
        # process) talks to the same driver, its configuration and its VerifyWrites setting.
        if board.nor_driver is None:
            board.nor_driver = FlexspiNorDriver(board)
        self.nor: FlexspiNorDriver = board.nor_driver
        self._fails_after_run: FaultRule | None = None

    # --- dispatch -----------------------------------------------------------------------------

    def serve(self) -> None:
        pending: bytes | None = None
        while True:
            if pending is None:
                kind, payload = self.link.recv()
                if kind != "cmd":
                    continue  # stray data outside a data phase: the firmware drops it
            else:
                payload, pending = pending, None
            try:
                self._dispatch(payload)
            except DataPhaseInterrupted as interrupted:
                pending = interrupted.payload

    def _dispatch(self, payload: bytes) -> None:
        self.board.command_arrived()
        if len(payload) < 4:
            return
        tag, flags, _, count = struct.unpack_from("<4B", payload)
        params = struct.unpack_from(f"<{min(count, (len(payload) - 4) // 4)}I", payload, 4)
        name = NAMES.get(tag)
        if name is None:
            self.board.record(f"0x{tag:02x}", params, MISUSE["unknown-command"].tag)
            self.link.send_response(generic(MISUSE["unknown-command"].tag, tag))
            return
        if self._injected(name, tag, params):
            return
        getattr(self, "_" + name.replace("-", "_"))(tag, *params)

    def _injected(self, name: str, tag: int, params: tuple[int, ...]) -> bool:
        board, faults = self.board, self.board.faults
        if board.hung or faults.fire("hang", name):
            board.hung = True
            board.record(name, params, None)
            return True
        if faults.fire("no-response", name):
            board.record(name, params, None)
            return True
        rule = faults.fire("status", name)
        if (
            rule is not None
            and (rule.after or rule.code == AFTER_THE_FACT)
            and name in ("write-memory", "flash-erase-region")
        ):
            # 20106 is the driver's verdict on a read-back (docs/FLASHLOADER.md): the real driver returns
            # it only after the erase or the program ran, so an injected one runs the command first.
            # `after` cuts a write short: the data phase programs that many bytes, then fails.
            self._fails_after_run = rule
            return False
        if rule is not None:
            board.record(name, params, rule.code)
            self._fail(tag, rule.code or 0, name)
            return True
        rule = faults.fire("malformed", name)
        if rule is not None and hasattr(self.link, "hid"):
            board.record(name, params, None)
            self._malformed(rule, tag, params)
            return True
        return False

    def _malformed(self, rule, tag: int, params: tuple[int, ...]) -> None:
        """Answer with a reply no correct host can take at face value."""
        send = self.link.hid.send_report
        good = generic(0, tag)
        if rule.shape == "truncated":
            send(struct.pack("<BBH", 0x03, 0, 2) + good[:2])
        elif rule.shape == "oversized":
            send(struct.pack("<BBH", 0x03, 0, 1100) + good + bytes(1100 - len(good)))
        elif rule.shape == "wrong-id":
            send(struct.pack("<BBH", 0x07, 0, len(good)) + good)
        elif rule.shape == "lying-length":
            send(struct.pack("<BBH", 0x03, 0, 900) + good)
        elif rule.shape == "unknown-status":
            send(struct.pack("<BBH", 0x03, 0, len(good)) + generic(0x1234_5678, tag))
        elif rule.shape == "halfway" and tag == CommandTag.READ_MEMORY.tag and len(params) >= 2:
            self.link.send_response(self._read_memory_response(0, params[1]))
            for _ in range(max(1, params[1] // self.link.packet_size // 2)):
                self.link.send_data(b"\xa5" * self.link.packet_size)
            # ... and then nothing more for this command.
        else:  # garbage, or halfway on a command without a data phase
            send(bytes(rule.choose(256) for _ in range(1 + rule.choose(64))))

    def _fail(self, tag: int, status: int, name: str) -> None:
        """Refuse a command. Commands that would send data answer in their own response shape."""
        if name == "read-memory":
            self.link.send_response(self._read_memory_response(status, 0))
        elif name == "get-property":
            self.link.send_response(self._property_response(status, []))
        elif name == "efuse-read-once":
            self.link.send_response(self._read_once_response(status, None))
        else:
            self.link.send_response(generic(status, tag))

    def _respond(self, name: str, tag: int, params: tuple[int, ...], status: int) -> None:
        self.board.record(name, params, status)
        self.link.send_response(generic(status, tag))

    # --- address checks -----------------------------------------------------------------------

    def _locate(self, address: int, length: int) -> tuple[str, int]:
        """("ram" | "flash", 0) when the range is usable, else ("", status)."""
        family = self.board.family
        for region in family.ram_regions:
            if region.contains(address, max(length, 1)):
                if self._overlaps_reserved(address, length):
                    return "", MISUSE["reserved-region"].tag
                return "ram", 0
        internal = self.board.internal
        if internal is not None and internal.region.contains(address, max(length, 1)):
            return "internal", 0
        flex = self.board.flexspi_window
        if flex is not None and flex.contains(address, max(length, 1)):
            config = self.board.flash_config
            if config is None:
                return "", MISUSE["not-configured"].tag
            if address + length > flex.start + config.size:
                return "", MISUSE["outside-memory"].tag
            return "flash", 0
        return "", MISUSE["outside-memory"].tag

    def _overlaps_reserved(self, address: int, length: int) -> bool:
        reserved = self.board.reserved
        return reserved is not None and address < reserved[1] and address + length > reserved[0]

    # --- commands without a data phase --------------------------------------------------------

    def _fill_memory(self, tag: int, address: int, length: int, pattern: int = 0xFFFFFFFF, *_) -> None:
        where, status = self._locate(address, length)
        if where:
            data = (pattern.to_bytes(4, "little") * (length // 4 + 1))[:length]
            if where == "ram":
                self.board.ram.write(address, data)
            else:  # fill-memory to flash goes through the driver's write path (flexspi_nor_mem_write)
                driver = self._driver(where)
                status = driver.begin_write(address) or driver.write(data) or driver.end_write()
        self._respond("fill-memory", tag, (address, length, pattern), status)

    def _configure_memory(self, tag: int, memory_id: int, address: int, *_) -> None:
        status = 0
        if memory_id != FLEXSPI_NOR_MEMORY_ID:
            status = MISUSE["unknown-memory-id"].tag
        else:
            where, status = self._locate(address, 4)
            if where == "ram":
                status = self.nor.configure(address)
            elif where == "flash":
                status = MISUSE["outside-memory"].tag
        self._respond("configure-memory", tag, (memory_id, address), status)

    def _flash_erase_region(self, tag: int, address: int, length: int, memory_id: int = 0, *_) -> None:
        where, status = self._locate(address, length)
        if where == "ram":
            status = MISUSE["outside-memory"].tag  # RAM is not erasable memory
        elif where == "flash":
            status = self.nor.erase(address, length)
        elif where == "internal":
            self.board.clock.charge(self.board.clock.model.erase_plan_s(address, length))
            status = self._driver(where).erase(address, length)
        fails, self._fails_after_run = self._fails_after_run, None
        if fails is not None and where:
            status = status or fails.code or 0
        self._respond("flash-erase-region", tag, (address, length, memory_id), status)

    def _flash_erase_all(self, tag: int, memory_id: int = 0, *_) -> None:
        if memory_id == 0 and self.board.internal is not None:
            self.board.clock.charge(self.board.clock.model.chip_erase_s)
            status = self.board.internal.erase_all()
        elif memory_id != FLEXSPI_NOR_MEMORY_ID:
            status = MISUSE["unknown-memory-id"].tag
        elif self.board.flash_config is None:
            status = MISUSE["not-configured"].tag
        else:
            status = self.nor.erase_all()
        self._respond("flash-erase-all", tag, (memory_id,), status)

    def _get_property(self, tag: int, prop: int, index: int = 0, *_) -> None:
        status, values = self._property(prop, index)
        self.board.record("get-property", (prop, index), status)
        self.link.send_response(self._property_response(status, values))

    def _property(self, prop: int, index: int) -> tuple[int, list[int]]:
        board = self.board
        ram = board.family.ram_regions
        table = {
            0x01: lambda: [CURRENT_VERSION],
            0x02: lambda: [PERIPHERALS_UART_USBHID],
            0x03: lambda: [board.internal.region.start] if board.internal else MISUSE["unknown-property"].tag,
            0x04: lambda: [board.internal.region.size] if board.internal else MISUSE["unknown-property"].tag,
            0x05: lambda: [board.internal.geometry.sector_size] if board.internal else MISUSE["unknown-property"].tag,
            0x1B: lambda: [board.internal.geometry.page_size] if board.internal else MISUSE["unknown-property"].tag,
            0x07: lambda: [AVAILABLE_COMMANDS],
            0x0A: lambda: [int(self.nor.verify_writes)],
            0x0B: lambda: [self.link.packet_size],
            0x0C: lambda: list((board.reserved and (board.reserved[0], board.reserved[1] - 1)) or ()),
            0x0E: lambda: [ram[index].start] if index < len(ram) else None,
            0x0F: lambda: [ram[index].size] if index < len(ram) else None,
            0x10: lambda: [SYSTEM_DEVICE_IDENT],
            0x11: lambda: [0],  # flash security state: unsecure
            0x12: lambda: [board.uuid & 0xFFFFFFFF, board.uuid >> 32],
            0x18: lambda: [CURRENT_VERSION],
            0x19: lambda: self._external_memory_attributes(index),
            HAB_REPORT_PROPERTY: lambda: self._hab_report(index),
        }
        getter = table.get(prop)
        if getter is None:
            return MISUSE["unknown-property"].tag, []
        values = getter()
        if values is None:
            return StatusCode.INVALID_ARGUMENT.tag, []
        if isinstance(values, int):  # an error status from the getter
            return values, []
        return 0, values

    def _hab_report(self, ivt_address: int):
        """[I] The flashloader of a secure-boot line stands for one built to call the ROM's HAB
        RVT (NXP SBL semifunc): index 0, report_status after the ROM loaded it; an IVT address,
        authenticate_image of the image there (in flash). NXP's stock RT10xx flashloader has no
        such property [?] (../shared/SECURE-BOOT.md §2)."""
        hab = self.board.hab
        if ivt_address == 0:
            report = hab.boot_report
            return report.words() if report is not None else MISUSE["unknown-property"].tag
        return hab.authenticate(self.board.flash_image, ivt_address).words()

    def _external_memory_attributes(self, memory_id: int):
        """Property 0x19 for a memory id: flags, start, size in KiB, page, sector, block, the words of
        mcu-boot's external_memory_property_store_t (src/property/property.h); a field is valid when
        flag bit 1 << (tag - 1) is set, for its tag 1..5 (start .. block). spsdk's ExtMemPropTags
        holds those bit values and ExternalMemoryAttributesValue reads them so (mboot/memories.py)."""
        if memory_id != FLEXSPI_NOR_MEMORY_ID:
            return MISUSE["unknown-memory-id"].tag
        config = self.board.flash_config
        if config is None:
            return MISUSE["not-configured"].tag
        flags = sum(tag.tag for tag in ExtMemPropTags)
        return [
            flags,
            config.region.start,
            config.size // 1024,
            config.page_size,
            config.sector_size,
            config.block_size,
        ]

    def _set_property(self, tag: int, prop: int, value: int = 0, *_) -> None:
        if prop == 0x0A:
            self.nor.verify_writes = bool(value)
            status = 0
        elif prop in (0x01, 0x02, 0x07, 0x0B, 0x0C, 0x0E, 0x0F, 0x10, 0x11, 0x12, 0x18, 0x19):
            status = MISUSE["read-only-property"].tag
        else:
            status = MISUSE["unknown-property"].tag
        self._respond("set-property", tag, (prop, value), status)

    def _efuse_read_once(self, tag: int, index: int, count: int = 4, *_) -> None:
        otp = self.board.otp
        value = otp.read(index) if otp.valid(index) else None
        status = 0 if value is not None else MISUSE["otp-read"].tag
        self.board.record("efuse-read-once", (index,), status)
        self.link.send_response(self._read_once_response(status, value))

    def _efuse_program_once(self, tag: int, index: int, count: int = 4, value: int = 0, *_) -> None:
        lock = bool(index & (1 << 24))
        index &= 0xFFFFFF
        otp = self.board.otp
        if not otp.valid(index) or otp.is_locked(index):
            status = MISUSE["otp-program"].tag
        else:
            self.board.burn_starting(index)
            self.board.clock.charge(self.board.clock.model.fuse_program_s)
            otp.burn(index, value, lock)
            status = 0
        self._respond("efuse-program-once", tag, (index, value, int(lock)), status)

    def _reset(self, tag: int, *_) -> None:
        self._respond("reset", tag, (), 0)
        raise LeaveStage(ROM)

    # --- commands with a data phase -----------------------------------------------------------

    def _driver(self, where: str):
        """The flash driver behind a located address: the FlexSPI NOR or the internal flash."""
        return self.nor if where == "flash" else self.board.internal

    def _write_memory(self, tag: int, address: int, length: int, memory_id: int = 0, *_) -> None:
        where, status = self._locate(address, length)
        driver = self._driver(where) if where in ("flash", "internal") else None
        if driver is not None:
            status = driver.begin_write(address)
        if status:
            self._respond("write-memory", tag, (address, length, memory_id), status)
            return
        self.link.send_response(generic(0, tag))
        disconnect = self.board.faults.fire("disconnect", "write-memory")
        fails_after, self._fails_after_run = self._fails_after_run, None
        # FlexSPI data is handed to the driver in batches, not per report: the driver programs
        # whole pages in order either way, so the flash, the status and the charged time are the
        # same; a fault armed for this data phase takes the report-by-report path.
        batch = where == "flash" and fails_after is None and disconnect is None
        if batch and hasattr(self.link, "recv_data"):
            assert driver is not None
            self._write_memory_batched(driver, tag, address, length, memory_id)
            return
        pending = bytearray()
        received = 0
        while received < length:
            kind, chunk = self.link.recv()
            if kind == "cmd":
                if pending and not status:
                    assert driver is not None
                    driver.write(bytes(pending))  # what arrived before the interruption is programmed
                self.board.record("write-memory", (address, length, memory_id), None)
                raise DataPhaseInterrupted(chunk)
            chunk = chunk[: length - received]
            cut = fails_after.after or length if fails_after is not None else length
            if fails_after is not None and not status and received + len(chunk) >= cut:
                head = chunk[: max(0, cut - received)]
                if driver is not None:
                    status = driver.write(head)
                    if cut < length:
                        driver.abandon_write()  # cut short: the partial page is lost with the failure
                    else:
                        status = status or driver.end_write()
                status = status or fails_after.code or 0
                received += len(chunk)
                continue
            if disconnect is not None and received + len(chunk) > disconnect.after:
                self.board.record("write-memory", (address, length, memory_id), None)
                raise Unplugged(f"unplugged {disconnect.after} bytes into write-memory")
            if status:
                pass  # after a failure the rest of the data phase is taken and dropped
            elif driver is None:
                self.board.ram.write(address + received, chunk)
            elif batch:
                pending += chunk
                if len(pending) >= WRITE_BATCH:
                    status = driver.write(bytes(pending))
                    pending.clear()
            else:
                if where == "internal":
                    self.board.clock.owe(  # seen in the reply only
                        self.board.clock.model.pages_programmed(address + received, len(chunk))
                        * self.board.clock.model.page_program_s
                    )
                status = driver.write(chunk)
            received += len(chunk)
        if pending and not status:
            assert driver is not None
            status = driver.write(bytes(pending))
        if driver is not None:
            status = status or driver.end_write()
        self._respond("write-memory", tag, (address, length, memory_id), status)

    def _write_memory_batched(self, driver, tag: int, address: int, length: int, memory_id: int) -> None:
        """The data phase to FlexSPI with no fault armed, collected `WRITE_BATCH` bytes at a time
        from the HID link: the same reports taken, the same pages programmed in the same order."""
        received, status = 0, 0
        while received < length:
            data, interrupted = self.link.recv_data(min(WRITE_BATCH, length - received))
            if data and not status:  # after a failure the rest of the data phase is taken and dropped
                status = driver.write(data[: length - received])
            received += len(data)
            if interrupted is not None:
                self.board.record("write-memory", (address, length, memory_id), None)
                raise DataPhaseInterrupted(interrupted)
        status = status or driver.end_write()
        self._respond("write-memory", tag, (address, length, memory_id), status)

    def _read_memory(self, tag: int, address: int, length: int, memory_id: int = 0, *_) -> None:
        where, status = self._locate(address, length)
        if not where:
            self.board.record("read-memory", (address, length, memory_id), status)
            self.link.send_response(self._read_memory_response(status, 0))
            return
        self.link.send_response(self._read_memory_response(0, length))
        data = self.board.ram.read(address, length) if where == "ram" else self._driver(where).read(address, length)
        corrupt = self.board.faults.fire("corrupt-readback", "read-memory")
        if corrupt is not None and corrupt.erased:
            data = b"\xff" * len(data)
        elif corrupt is not None and data:
            flipped = bytearray(data)  # copied only when a fault changes it
            bit = corrupt.choose(len(data) * 8)
            flipped[bit // 8] ^= 1 << (bit % 8)
            data = bytes(flipped)
        disconnect = self.board.faults.fire("disconnect", "read-memory")
        size = self.link.packet_size
        # Every packet that starts before the disconnect point goes out, then the board is gone.
        sent = length if disconnect is None else min(length, -(-disconnect.after // size) * size)
        self.link.send_data_stream(data if sent >= len(data) else data[:sent])
        if disconnect is not None and sent < length:
            self.board.record("read-memory", (address, length, memory_id), None)
            raise Unplugged(f"unplugged {disconnect.after} bytes into read-memory")
        self._respond("read-memory", tag, (address, length, memory_id), 0)

    # --- response shapes ----------------------------------------------------------------------

    @staticmethod
    def _read_memory_response(status: int, length: int) -> bytes:
        flags = 1 if status == 0 else 0  # data phase follows
        return struct.pack("<4B2I", ResponseTag.READ_MEMORY.tag, flags, 0, 2, status, length)

    @staticmethod
    def _property_response(status: int, values: list[int]) -> bytes:
        return struct.pack(
            f"<4B{1 + len(values)}I", ResponseTag.GET_PROPERTY.tag, 0, 0, 1 + len(values), status, *values
        )

    @staticmethod
    def _read_once_response(status: int, value: int | None) -> bytes:
        if value is None:
            return struct.pack("<4B2I", ResponseTag.FLASH_READ_ONCE.tag, 0, 0, 2, status, 0)
        return struct.pack("<4B3I", ResponseTag.FLASH_READ_ONCE.tag, 0, 0, 3, status, 4, value)
