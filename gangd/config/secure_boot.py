"""`[secure_boot]`: closing an i.MX RT10xx part (HAB4) only after proof, from the signed files.

The SRK_HASH fuse words are never typed: they are derived from the SRK table inside the signed
application's CSF (the Install SRK command's table), exactly as spsdk exports them
(`SrkTable.export_fuses()`, word i = `get_fuse(i)` -> OTP index 0x18 + i; SECURE-BOOT.md §3, spsdk
`image/hab/hab_srk.py`, NXP SBL `program_ocotp.bat`). The signed flashloader must carry the same
SRK table: on a closed part the station can only ever load a flashloader signed with these keys.

    [secure_boot]
    image = "app_signed.bin"          # one of the [[image]] files: a HAB container with a CSF
    close = "after-proof"             # or "never" (the default): burn SEC_CONFIG[1] only after proof
    proof = "flashloader-hab-report"  # the named check that must pass while the part is still open
    proof_property = 0xF0             # the get-property tag that check asks (default 0xF0)
    [secure_boot.locks]               # lock bits, burned last (after the close is confirmed)
    LOCKS = 0x4000                    # e.g. the SRK lock bit (MBU's mask; unnamed in spsdk)

The flashloader is `[flashloader].path`: with `[secure_boot]` it must be a signed HAB container.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gangd.config.family import FamilyInfo
from gangd.config.recipe import FusePlan, FuseWord, Image

if TYPE_CHECKING:
    from gangd.config.loader import Table

CLOSE_POLICIES = ("never", "after-proof")
# The proofs gangd knows, by name. Each is a check that must pass on the board, while it is open,
# after the SRK is burned: see PROOFS' descriptions and README "Secure boot".
FLASHLOADER_HAB_REPORT = "flashloader-hab-report"
PROOFS = {
    FLASHLOADER_HAB_REPORT: (
        "the signed flashloader, freshly loaded by the ROM after the SRK burn, answers get-property "
        "<proof_property> with HAB's report_status (index 0: its own load; index = the image's IVT "
        "address: hab_rvt.authenticate_image of the signed image); passes on status SUCCESS (0xF0) "
        "and no HAB events. NXP's stock RT10xx flashloader does not report HAB events [?]: this needs "
        "a flashloader built to call the ROM's HAB RVT (as NXP SBL's semifunc does)"
    ),
}
DEFAULT_PROOF_PROPERTY = 0xF0
# spsdk's `hab_container` offsets of the IVT in a bootable image (serial downloader / RAM: 0x400,
# FlexSPI NOR: 0x1000) and a bare container (0).
IVT_OFFSETS = (0, 0x400, 0x1000)
SRK_HASH = "SRK_HASH"
CLOSE_FUSE = "BOOT_CFG1"
SEC_CONFIG1 = 1 << 1  # BOOT_CFG1 bit 1: 0 open, 1 closed (spsdk mimxrt1024 fuses.json)
LOCK_FUSE = "LOCKS"
BOOT_CFG_WRITE_LOCK = 1 << 2  # LOCK bit 2: write lock of BOOT_CFG0/1/2 (spsdk fuses.json)


class HabError(ValueError):
    """A file that is not a signed HAB container gangd can use."""


@dataclass(frozen=True)
class HabContainer:
    """A signed HAB container as spsdk parses it: where its IVT is and the SRK table its CSF installs."""

    path: str  # as the configuration names it
    ivt_offset: int  # of the IVT in the file
    ivt_address: int  # the IVT's self pointer
    csf_address: int
    srk_table: bytes  # spsdk's SrkTable.export()
    srk_hash: bytes  # spsdk's SrkTable.export_fuses(): SHA-256 over the records' hashes
    srk_words: tuple[int, ...]  # spsdk's get_fuse(0..7): the words for OTP 0x18..0x1F

    @property
    def srk_hex(self) -> str:
        return self.srk_hash.hex()


@dataclass(frozen=True)
class SecureBoot:
    image: HabContainer
    flashloader: HabContainer
    srk: tuple[FuseWord, ...]  # the eight SRK_HASH words, derived, in OTP index order
    close: str  # never | after-proof
    close_word: FuseWord  # BOOT_CFG1 with SEC_CONFIG[1]
    proof: str | None
    proof_property: int
    unsigned_flashloader: bytes  # the signed flashloader with its CSF pointer cleared, for the confirm
    locks: tuple[FuseWord, ...] = ()

    @property
    def srk_plan(self) -> FusePlan:
        return FusePlan("if-blank", self.srk)


def srk_table_of_csf(csf: bytes):
    """The SrkTable a CSF installs (spsdk's `CmdInstallSrk` data), or None. Shared with the simulator."""
    from spsdk.image.hab.hab_srk import SrkTable
    from spsdk.image.hab.segments.seg_csf import SegCSF

    for command in SegCSF.parse(csf).commands:
        reference = getattr(command, "cmd_data_reference", None)
        if isinstance(reference, SrkTable):
            return reference
    return None


def srk_words(table) -> tuple[int, ...]:
    """spsdk's own fuse words of an SRK table: get_fuse(i) goes to OTP index 0x18 + i."""
    return tuple(table.get_fuse(i) for i in range(8))


def parse_container(data: bytes, path: str) -> HabContainer:
    """The IVT and the CSF's SRK table of a signed HAB container, parsed by spsdk's SegIVT and
    SegCSF. The file starts at the IVT's self pointer minus its offset (spsdk's export layout)."""
    from spsdk.exceptions import SPSDKError
    from spsdk.image.hab.segments.seg_ivt import SegIVT

    for offset in IVT_OFFSETS:
        if len(data) < offset + 32 or data[offset] != 0xD1:
            continue
        try:
            ivt = SegIVT().parse(data[offset:])
        except (SPSDKError, ValueError):
            continue
        base = ivt.ivt_address - offset  # the address the file's first byte is loaded or written at
        if not ivt.csf_address:
            raise HabError(f"{path}: a HAB container without a CSF (unsigned); sign it (nxpimage hab export)")
        if not base <= ivt.csf_address < base + len(data):
            raise HabError(f"{path}: its IVT's CSF pointer 0x{ivt.csf_address:08x} lies outside the file")
        try:
            table = srk_table_of_csf(data[ivt.csf_address - base :])
        except (SPSDKError, ValueError) as exc:
            raise HabError(f"{path}: its CSF does not parse: {exc}") from None
        if table is None:
            raise HabError(f"{path}: its CSF installs no SRK table")
        return HabContainer(
            path, offset, ivt.ivt_address, ivt.csf_address, table.export(), table.export_fuses(), srk_words(table)
        )
    raise HabError(f"{path}: no HAB image vector table at offset {', '.join(hex(o) for o in IVT_OFFSETS)}")


def unsigned_copy(data: bytes, container: HabContainer) -> bytes:
    """The same container with the IVT's CSF pointer cleared: what HAB calls an unsigned image."""
    at = container.ivt_offset + 24  # IVT: header, entry, reserved, dcd, boot data, self, csf
    return data[:at] + b"\0\0\0\0" + data[at + 4 :]


def parse_secure_boot(
    table: Table | None,
    fuses_table: Table,
    family: FamilyInfo,
    images: tuple[Image, ...],
    fuses: FusePlan,
    flashloader: bytes,
    flashloader_path: str | None,
    flashloader_address: int,
) -> SecureBoot | None:
    if table is None:
        return None
    image_of = table.later("image", str)
    close_of = table.later("close", str, "never")
    proof_of = table.later("proof", str, None)
    proof_property_of = table.later("proof_property", int, DEFAULT_PROOF_PROPERTY)
    locks_of = table.later("locks", dict, {})
    table.done()
    r = table.reader
    try:
        srk_fuses = family.fuse_group(SRK_HASH)
        close_fuse = family.fuse(CLOSE_FUSE)
    except KeyError:
        srk_fuses, close_fuse = (), None
    if family.rom_protocol != "sdp" or len(srk_fuses) != 8 or close_fuse is None:
        raise table.error(None, f"secure boot is provided for i.MX RT10xx (HAB4) parts; {family.name} is not one")

    name = image_of()
    image_path = r.file(name, table.dotted("image"))
    written = [i for i in images if i.path is not None and r.file(i.path, table.dotted("image")) == image_path]
    if not written:
        raise table.error("image", f"{name} is not one of the [[image]] files: the signed image must be written")
    data = image_path.read_bytes()
    try:
        image = parse_container(data, name)
    except HabError as exc:
        raise table.error("image", str(exc)) from None
    expected_ivt = written[0].address + image.ivt_offset
    if image.ivt_address != expected_ivt:
        raise table.error(
            "image",
            f"its IVT says it lies at 0x{image.ivt_address:08x}, but [[image]] writes it at "
            f"0x{written[0].address:08x} (IVT at 0x{expected_ivt:08x})",
        )

    loader_name = flashloader_path or "?"
    if not flashloader:
        # `gangd plan` without the flashloader file: nothing to compare; the plan still prints.
        loader = HabContainer(loader_name, 0x400, flashloader_address + 0x400, 0, b"", image.srk_hash, image.srk_words)
    else:
        try:
            loader = parse_container(flashloader, loader_name)
        except HabError as exc:
            raise r.error("flashloader.path", f"[secure_boot] needs a signed flashloader: {exc}") from None
        if loader.srk_hash != image.srk_hash:
            raise r.error(
                "flashloader.path",
                f"signed with another SRK table than {name} (SRK hash {loader.srk_hex} vs {image.srk_hex}): "
                "a closed part could never load this flashloader",
            )

    srk = tuple(FuseWord(word.name, word.index, value) for word, value in zip(srk_fuses, image.srk_words))
    _check_fuses(fuses_table, family, fuses, srk, close_fuse.index)

    close = close_of()
    if close not in CLOSE_POLICIES:
        raise table.error("close", f"{close!r} is not one of {', '.join(CLOSE_POLICIES)}")
    proof = proof_of()
    if proof is not None and proof not in PROOFS:
        raise table.error("proof", f"{proof!r} is not a known proof (known: {', '.join(PROOFS)})")
    if close == "after-proof" and proof is None:
        raise table.error(
            "close",
            f"'after-proof' needs a proof: say proof = \"{FLASHLOADER_HAB_REPORT}\" (see README, Secure boot)",
        )
    proof_property = proof_property_of()
    if not 0 < proof_property <= 0xFF:
        raise table.error("proof_property", "expected a property tag between 1 and 0xFF")

    locks = _locks(table, locks_of(), family, srk, close_fuse.index)
    return SecureBoot(
        image=image,
        flashloader=loader,
        srk=srk,
        close=close,
        close_word=FuseWord(close_fuse.name, close_fuse.index, SEC_CONFIG1),
        proof=proof,
        proof_property=proof_property,
        unsigned_flashloader=unsigned_copy(flashloader, loader) if flashloader else b"",
        locks=locks,
    )


def _check_fuses(
    fuses_table: Table, family: FamilyInfo, fuses: FusePlan, srk: tuple[FuseWord, ...], close_index: int
) -> None:
    """[fuses] may repeat the SRK hash only if it is the same; closing and locking belong here."""
    derived = {w.index: w.value for w in srk}
    for key in fuses_table.get("values", dict, {}):
        dotted = f'values."{key}"'
        indexes = {w.index for w in family.fuse_group(key)}
        planned = {w.index: w.value for w in fuses.words if w.index in indexes}
        if indexes & derived.keys():
            wrong = [i for i in sorted(indexes & derived.keys()) if planned.get(i) != derived[i]]
            if wrong:
                want = "".join(f"{derived[i]:08x}" for i in sorted(derived))
                raise fuses_table.error(
                    dotted,
                    f"differs from the SRK hash of the signed image's CSF ({want} for words "
                    "0x18..0x1f); leave SRK_HASH out of [fuses]: [secure_boot] burns it",
                )
        if close_index in indexes and planned.get(close_index, 0) & SEC_CONFIG1:
            raise fuses_table.error(
                dotted, 'sets SEC_CONFIG[1] (closes the part): say close = "after-proof" in [secure_boot]'
            )
        lock = _lock_index(family)
        if lock in indexes and planned.get(lock, 0) & BOOT_CFG_WRITE_LOCK:
            raise fuses_table.error(
                dotted,
                "burns BOOT_CFG_LOCK before the part is closed, which would make closing impossible: "
                "put it in [secure_boot.locks] (burned last)",
            )


def _lock_index(family: FamilyInfo) -> int | None:
    try:
        return family.fuse(LOCK_FUSE).index
    except KeyError:
        return None


def _locks(
    table: Table, values: dict, family: FamilyInfo, srk: tuple[FuseWord, ...], close_index: int
) -> tuple[FuseWord, ...]:
    words = []
    taken = {w.index for w in srk} | {close_index}
    for name, value in values.items():
        dotted = f'locks."{name}"'
        try:
            word = family.fuse(name)
        except KeyError:
            raise table.error(dotted, f"{family.name} has no fuse word named {name!r}") from None
        if isinstance(value, str):
            try:
                value = int(value, 16 if not value.lower().startswith("0x") else 0)
            except ValueError:
                raise table.error(dotted, f"{value!r} is not a hexadecimal number") from None
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= 0xFFFFFFFF:
            raise table.error(dotted, "expected a non-zero 32-bit value")
        if word.index in taken:
            raise table.error(dotted, "is a word [secure_boot] already burns (SRK_HASH or BOOT_CFG1)")
        words.append(FuseWord(word.name, word.index, value))
    return tuple(words)
