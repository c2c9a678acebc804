"""The physics of the bus and the flash, in seconds: what a report, a page, an erase and an
enumeration cost. The simulator charges these costs (gangd/sim/timing.py `TimingModel` extends
this with its time scale and clock); the product's floor (gangd/engine/floor.py, `gangd
check-config` and `gangd scan`) adds them up. The floors allow both: sim may import core.

Defaults come from datasheets and USB descriptors:
- a high-speed HID interrupt endpoint with bInterval 3 moves one report every 2**(3-1) microframes
  of 125 µs = 0.5 ms, so ~1 KiB reports give about 2 MB/s;
- a command round trip costs at least 1 ms: one OUT report and one IN report;
- serial NOR: 0.4 ms per 256-byte page program, 45 ms per 4 KiB sector erase, 150 ms per 64 KiB
  block erase, 40 s for a whole chip;
- re-enumeration after a jump or a reset takes 0.5 s before the new device is usable when no other
  device enumerates on its host controller: the board's own part (its boot and USB start, every
  board in parallel) and the kernel's part, serialised per host controller (gangd/core/bus.py has
  the kernel's figures and their sources, drivers/usb/core/hub.c and USB 2.0 7.1.7.5).
"""

from __future__ import annotations

from dataclasses import dataclass

from gangd.core.bus import (
    CONTROL_TRANSFER_S,
    CONTROL_TRANSFERS,
    PORT_RESET_S,
    PORT_RESETS,
    RESET_RECOVERY_S,
    SET_ADDRESS_SETTLE_S,
)

SECTOR_SIZE = 4 * 1024
BLOCK_SIZE = 64 * 1024
PAGE_SIZE = 256
# Report payloads: the RT10xx flashloader's MaxPacketSize over USB, 1012 bytes (mcu-boot
# usb_descriptor.*, RT1021 `BL_EXPANDED_USB_HID_PACKET_SIZE 1012`; docs/FLASHLOADER.md "USB"), and
# SDP's 1024-byte data reports (spsdk/sdp/protocol/bulk_protocol.py). The simulator derives its
# own from the HID descriptors (gangd/sim/links.py); a test holds the two equal.
MBOOT_PACKET_SIZE = 1012
SDP_DATA_REPORT = 1024


@dataclass(frozen=True)
class Physics:
    report_interval_s: float = 0.0005
    page_program_s: float = 0.0004
    sector_erase_s: float = 0.045
    block_erase_s: float = 0.150
    chip_erase_s: float = 40.0
    # An uncontended re-enumeration, the board's part and the kernel's (`address0_s`) together; the
    # board's part is what is left of it (`device_boot_s`).
    reenumeration_s: float = 0.5
    # The kernel's part, per enumeration, inside the controller's address0_mutex (hub.c, see above).
    # (the kernel's figures and their sources: gangd/core/py)
    port_reset_s: float = PORT_RESET_S  # HUB_SHORT_RESET_TIME: a hub's port (a root port: 60 ms)
    reset_recovery_s: float = RESET_RECOVERY_S  # hub_port_reset(): TRSTRCY 10 ms + the kernel's 40 ms
    port_resets: int = PORT_RESETS  # hub_port_init()'s new scheme resets twice (around GET_DESCRIPTOR(64))
    set_address_settle_s: float = SET_ADDRESS_SETTLE_S  # hub_port_init(): msleep(10) after SET_ADDRESS
    # GET_DESCRIPTOR(64), SET_ADDRESS, GET_DESCRIPTOR(18): 0.5 ms each, our choice (a setup, a data
    # and a status stage in their own 125 µs microframes plus the host's turnaround)
    control_transfer_s: float = CONTROL_TRANSFER_S
    control_transfers: int = CONTROL_TRANSFERS
    fuse_program_s: float = 0.005  # one OTP word, including the controller's reload
    # Multiplies every flash program/erase cost; the "slow flash" fault raises it per board.
    flash_slowdown: float = 1.0

    # --- enumeration ---------------------------------------------------------------------------

    def address0_s(self) -> float:
        """One enumeration's time inside its host controller's address0_mutex (hub.c
        hub_port_init(), new scheme): no other device of the controller enumerates meanwhile."""
        resets = self.port_resets * (self.port_reset_s + self.reset_recovery_s)
        return resets + self.set_address_settle_s + self.control_transfers * self.control_transfer_s

    def device_boot_s(self) -> float:
        """The board's own part of a re-enumeration (its boot and USB start, in parallel with every
        other board's): the uncontended re-enumeration less the kernel's part, never below 0."""
        return max(0.0, self.reenumeration_s - self.address0_s())

    # --- what each operation costs, in model seconds (before time_scale) ---------------------
    # A command is a report out and a report in, so a round trip is 2 report intervals = 1 ms.

    def reports(self, payload_bytes: int, packet_size: int) -> int:
        """How many packets a data phase of `payload_bytes` needs."""
        return -(-payload_bytes // packet_size)

    def transfer_s(self, payload_bytes: int, packet_size: int) -> float:
        return self.reports(payload_bytes, packet_size) * self.report_interval_s

    def round_trip_s(self) -> float:
        return 2 * self.report_interval_s

    def pages_programmed(self, address: int, length: int) -> int:
        """NOR pages a write programs: the flashloader collects whole pages (padding the last one)
        and programs each once (mcu-boot flexspi_nor_mem_write / flush)."""
        if length <= 0:
            return 0
        return (address + length - 1) // PAGE_SIZE - address // PAGE_SIZE + 1

    def erase_plan_s(self, address: int, length: int) -> float:
        """Erase the way a NOR driver does: 64 KiB blocks where aligned, 4 KiB sectors elsewhere."""
        cost = 0.0
        end = address + length
        while address < end:
            if address % BLOCK_SIZE == 0 and end - address >= BLOCK_SIZE:
                cost += self.block_erase_s
                address += BLOCK_SIZE
            else:
                cost += self.sector_erase_s
                address += SECTOR_SIZE
        return cost * self.flash_slowdown

    # --- whole commands; the simulator charges them, the floors (gangd/engine/floor.py) add them up

    def write_memory_s(self, address: int, length: int, packet_size: int, to_flash: bool) -> float:
        """Command, first response, data packets, final response; flash programmed page by page."""
        cost = (3 + self.reports(length, packet_size)) * self.report_interval_s
        if to_flash:
            cost += self.pages_programmed(address, length) * self.page_program_s * self.flash_slowdown
        return cost

    def read_memory_s(self, length: int, packet_size: int) -> float:
        return (3 + self.reports(length, packet_size)) * self.report_interval_s

    def erase_region_s(self, address: int, length: int) -> float:
        return self.round_trip_s() + self.erase_plan_s(address, length)
