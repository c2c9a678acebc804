"""HAB4 as the simulated i.MX RT10xx ROM applies it: SRK_HASH fuses, SEC_CONFIG[1], signed images.

What the ROM does, with sources (../shared/SECURE-BOOT.md):
- A part is closed when BOOT_CFG1 bit 1 (SEC_CONFIG[1]) is burned (spsdk mimxrt1024 fuses.json);
  every SDP response then carries 0x12343412 instead of 0x56787856 (spsdk sdp/commands.py).
- Closed: an image runs only if it authenticates; a refused jump leaves the ROM in SDP and
  ERROR_STATUS reports 0x33333333 (MCUBootUtility status.py, NXP community RT1021 thread).
  Open: "allows any image even if authentication fails" (fuses.json); failures are only logged
  as HAB events, which firmware reads with the RVT's report_status/report_event (NXP SBL
  semifunc hab_rvt.c): status SUCCESS 0xF0 / FAILURE 0x33, config OPEN 0xF0 / CLOSED 0xCC,
  state TRUSTED 0x99 / NONSECURE 0x66.
- The SRK table a CSF installs must hash (spsdk SrkTable.export_fuses) to the SRK_HASH fuses.

Where the simulator had to choose [I]:
- The signature is a pretend one. The simulator parses the CSF with spsdk (SegCSF) and checks
  that it installs an SRK table, a CSF key and authenticates data, but it does not run the RSA/CMS
  verification HAB performs in AuthenticateCSF and AuthenticateData with keys chained to the SRK
  table. That verification "passes" unless the fault `hab:bad-signature` says it fails.
- In open mode HAB 4.1.1 does not check the SRK hash (AN4581 via NXP support); whether the RT1020
  ROM does is not known [?]. The simulator logs an event for a non-blank SRK_HASH that differs
  from the table's hash in either mode, and for blank SRK_HASH fuses only on a closed part.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from gangd.sim.images import IVT_SIZE, parse_ivt

HAB_SUCCESS, HAB_WARNING, HAB_FAILURE = 0xF0, 0x69, 0x33
CONFIG_OPEN, CONFIG_CLOSED = 0xF0, 0xCC
STATE_TRUSTED, STATE_NONSECURE = 0x99, 0x66
SRK_HASH_INDEX = 0x18  # SRK_HASH[255:224] .. [31:0] at 0x18..0x1F (spsdk fuses.json)
BOOT_CFG1_INDEX = 0x06
SEC_CONFIG1 = 1 << 1
CSF_READ = 0x4000  # bytes read at the CSF pointer: spsdk's CSF segment is 0x2000 with its data
MODES = ("bad-signature", "wrong-srk")


@dataclass(frozen=True)
class HabReport:
    """What report_status / report_event would tell firmware after an authentication."""

    status: int
    config: int
    state: int
    events: tuple[str, ...]

    def words(self) -> list[int]:
        return [self.status, self.config, self.state, len(self.events)]


def other_key_hash(serial: str) -> list[int]:
    """SRK_HASH words of someone else's keys, for `hab:wrong-srk` (a part provisioned elsewhere)."""
    digest = hashlib.sha256(b"another key:" + serial.encode()).digest()
    return [int.from_bytes(digest[4 * i : 4 * i + 4], "little") for i in range(8)]


class Hab:
    """One board's HAB: its fuses decide open/closed and the SRK hash."""

    def __init__(self, board) -> None:
        self.board = board
        self.boot_report: HabReport | None = None  # the ROM's report of the image it last started

    @property
    def closed(self) -> bool:
        board = self.board
        return board.spec.hab_closed or bool(board.otp.read(BOOT_CFG1_INDEX) & SEC_CONFIG1)

    def srk_fuses(self) -> bytes:
        otp = self.board.otp
        return b"".join(otp.read(SRK_HASH_INDEX + i).to_bytes(4, "little") for i in range(8))

    def _fault(self, mode: str) -> bool:
        return any(rule.mode == mode for rule in self.board.faults.of_kind("hab"))

    def authenticate(self, read: Callable[[int, int], bytes], ivt_address: int) -> HabReport:
        """Authenticate the image whose IVT is at `ivt_address` (read through `read`)."""
        from gangd.config.secure_boot import srk_table_of_csf

        events: list[str] = []
        ivt = parse_ivt(read(ivt_address, IVT_SIZE))
        if ivt is None:
            events.append("no image vector table")
        elif ivt.csf == 0:
            events.append("no CSF: an unsigned image")
        else:
            try:
                csf = read(ivt.csf, CSF_READ)
                table = srk_table_of_csf(csf)
                commands = _command_names(csf)
            except Exception as exc:  # spsdk raises several kinds for a CSF it cannot read
                table, commands = None, set()
                events.append(f"CSF does not parse: {exc}")
            if table is None and not events:
                events.append("the CSF installs no SRK table")
            elif table is not None:
                fuses = self.srk_fuses()
                if any(fuses) and fuses != table.export_fuses():
                    events.append("the SRK table's hash differs from the SRK_HASH fuses")
                elif not any(fuses) and self.closed:
                    events.append("SRK_HASH fuses are blank on a closed part")
                signs = {"CmdInstallCsfk", "CmdAuthenticateCsf"} <= commands
                if not signs or not any("AuthenticateData" in name for name in commands):
                    events.append("the CSF authenticates nothing")
                elif self._fault("bad-signature"):
                    # The pretend signature check: stands for HAB's CMS verification (see above).
                    events.append("signature verification failed")
        closed = self.closed
        status = HAB_SUCCESS if not events else HAB_FAILURE
        return HabReport(
            status,
            CONFIG_CLOSED if closed else CONFIG_OPEN,
            STATE_TRUSTED if closed and not events else STATE_NONSECURE,
            tuple(events),
        )


def _command_names(csf: bytes) -> set[str]:
    from spsdk.image.hab.segments.seg_csf import SegCSF

    return {type(command).__name__ for command in SegCSF.parse(csf).commands}
