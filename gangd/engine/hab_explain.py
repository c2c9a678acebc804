"""`gangd explain` for the HAB words an i.MX RT ROM answers over SDP (SECURE-BOOT.md §2).

The ROM prefixes every SDP response with its HAB mode and answers ERROR_STATUS with a HAB status
word (spsdk `sdp/commands.py` ResponseValue; MCUBootUtility `boot/status.py`; NXP community RT1021
thread). Firmware reads the byte codes of the same states from the ROM's HAB RVT report_status
(NXP SBL `hab_type.h`): status SUCCESS 0xF0 / WARNING 0x69 / FAILURE 0x33, config OPEN 0xF0 /
CLOSED 0xCC, state TRUSTED 0x99 / NONSECURE 0x66; the secure-boot proof records them by name.
"""

from __future__ import annotations

from gangd.engine import recovery

# code: (name, meaning, causes, remedies, recovery class, what gangd does)
HAB_WORDS: dict[int, tuple[str, str, tuple[str, ...], tuple[str, ...], str, str]] = {
    0x5678_7856: (
        "HAB open",
        "Every SDP response of an open part starts with this word: SEC_CONFIG[1] (BOOT_CFG1 bit 1) is not "
        "burned, and the ROM runs any image, logging failed authentications as HAB events only.",
        ("the part was never closed", "after gangd's close: the burn did not take (it is read back)"),
        ('to close it, [secure_boot] close = "after-proof" with a proof that passes',),
        "none",
        "[secure_boot]'s confirm stage fails if the ROM still says open after the close",
    ),
    0x1234_3412: (
        "HAB closed",
        "Every SDP response of a closed part starts with this word: only images that authenticate against "
        "the SRK_HASH fuses run, including the flashloader gangd loads.",
        ("SEC_CONFIG[1] is burned: by gangd's close stage, or before the board reached the line",),
        (
            "load only flashloaders signed with the same SRK keys ([flashloader].path must be signed)",
            "a closed part cannot be opened again; with the keys lost it cannot be reprogrammed",
        ),
        "none",
        "expected after the close; the confirm stage checks it, then that an unsigned flashloader is refused",
    ),
    0xF0F0_F0F0: (
        "HAB success",
        "ERROR_STATUS: the ROM's last HAB operation succeeded.",
        (),
        (),
        "none",
        "nothing",
    ),
    0x6969_6969: (
        "HAB warning",
        "ERROR_STATUS: HAB logged a warning (an event that did not stop the boot).",
        ("an open part ran an image that did not fully authenticate",),
        ("do not close the part: the secure-boot proof asks for SUCCESS and no HAB event",),
        recovery.PERMANENT,
        "counted as a failed proof",
    ),
    0x3333_3333: (
        "HAB failure",
        "ERROR_STATUS after a jump the ROM refused: the image did not authenticate on a closed part, or has no "
        "valid IVT (RT1021: 0x33333333 after an unsigned image on a closed part, NXP community).",
        (
            "an unsigned flashloader on a closed part (expected in [secure_boot]'s confirm stage)",
            "a flashloader signed with other keys than the SRK_HASH fuses hold",
            "the jump address is not the flashloader's IVT",
        ),
        (
            "sign the flashloader with the keys whose SRK table hash the fuses hold",
            "check [flashloader] jump_address against the IVT's self pointer",
        ),
        recovery.PERMANENT,
        "the board is failed with the reason; nothing is retried",
    ),
}
