"""A provisioning plan: the typed steps one board goes through, made from a validated recipe.

`plan(recipe)` is the only place the provisioning sequence is written. The job engine (`job.py`)
runs it; `gangd plan` prints it as the sdphost/blhost command lines NXP's Secure Provisioning tool
would run; the benchmark's floor and peers and the soak derive their command sequences from it.
Steps are values built from the validated configuration, never free-form command strings: a fuse
burn exists in a plan only when the recipe's fuse policy asks for one, so fuse safety holds by
construction.

Each step carries its deadline, its progress weight (fwupd-style: progress = done weight over
planned weight), what a transient failure does (`Retry`) and whether it is shielded from
cancellation. Flash steps of one image share a group: a retried flash failure restarts the group
at its erase, because the flashloader never programs a page that is not erased.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gangd.config.geometry import (
    FLEXSPI_NOR,
    INTERNAL_FLASH,
    MAPPED_MEMORY_IDS,
    SECTOR_SIZE,
    SERIAL_NOR,
    Geometry,
)
from gangd.config.recipe import BoardData, FusePlan, Image, Recipe
from gangd.config.secure_boot import SecureBoot


class StepName(enum.StrEnum):
    LOAD_FLASHLOADER = "load-flashloader"
    WAIT_REPLUG = "wait-replug"
    OPEN = "open"
    IDENTIFY = "identify"
    TAKE_BOARD_DATA = "take-board-data"
    CONFIGURE_MEMORY = "configure-memory"
    BLANK_CHECK = "blank-check"
    ERASE = "erase"
    WRITE = "write"
    VERIFY = "verify"
    BOARD_DATA = "board-data"
    FUSES = "fuses"
    SECURE_BOOT = "secure-boot"  # each stage is its own step: secure-boot-srk, -proof, -close, ...
    RESET = "reset"
    WAIT_REBOOT = "wait-reboot"


class Stage(enum.StrEnum):
    ROM = "rom"
    FLASHLOADER = "flashloader"


class Retry(enum.Enum):
    NONE = "none"  # a failure goes straight to the job's board-level recovery
    GROUP = "group"  # a transient failure is diagnosed, then the step's group runs again from its start


@dataclass(frozen=True)
class Step:
    name: StepName
    deadline_s: float
    weight: int
    stage: Stage  # the stage the board is in while the step runs
    retry: Retry = Retry.NONE
    group: int | None = None  # steps sharing a group are retried together
    shielded: bool = False  # runs to its end even while gangd shuts down


@dataclass(frozen=True)
class LoadFlashloader(Step):
    address: int = 0
    data: bytes = b""
    jump_address: int = 0
    path: str | None = None


@dataclass(frozen=True)
class WaitStage(Step):
    """Wait for the board to re-enumerate on the same port in `target` (by physical port path)."""

    target: Stage = Stage.FLASHLOADER
    required: bool = True  # False: a board that never comes back is logged, not failed


@dataclass(frozen=True)
class Open(Step):
    pass


@dataclass(frozen=True)
class Identify(Step):
    internal_flash: bool = False  # the memory is the internal flash: its geometry is asked here


@dataclass(frozen=True)
class ConfigureMemory(Step):
    memory_id: int = 9
    option_address: int = 0
    option_words: tuple[int, ...] = ()


@dataclass(frozen=True)
class BlankCheck(Step):
    """Read the image's sectors back first: sectors already blank (all 0xFF) need no erase. The
    read-back after the write still checks every byte, so a wrong blank check is caught there."""

    address: int = 0
    length: int = 0
    memory_id: int = 0


@dataclass(frozen=True)
class Erase(Step):
    address: int = 0
    length: int = 0
    memory_id: int = 0
    skip_blank: bool = False  # erase only the sectors the group's blank check found not blank


@dataclass(frozen=True)
class Write(Step):
    image: Image = Image(0, b"")
    memory_id: int = 0
    skip_blank_pages: bool = False  # program only the pages holding something other than 0xFF


@dataclass(frozen=True)
class Verify(Step):
    image: Image = Image(0, b"")
    memory_id: int = 0


@dataclass(frozen=True)
class TakeBoardData(Step):
    """Take this board's values, durably, in one transaction with its record, before anything is
    written: a board that cannot get its values is left as it came."""

    entries: tuple[BoardData, ...] = ()


@dataclass(frozen=True)
class WriteBoardData(Step):
    """Write the board's values: to flash (erase the value's sectors, write, read back) or into
    fuse words (the fuse rules apply)."""

    entries: tuple[BoardData, ...] = ()
    memory_id: int = 0
    geometry: Geometry = SERIAL_NOR  # as planned; the job erases by the board's answer


@dataclass(frozen=True)
class Fuses(Step):
    fuses: FusePlan = FusePlan()


@dataclass(frozen=True)
class SecureBootStage(Step):
    """One stage of closing the part (engine/secure_boot.py): srk, reload, proof, close, confirm,
    locks. `gate` says what must hold before it may run (printed by `gangd plan`)."""

    what: str = "srk"
    gate: str = ""
    secure_boot: SecureBoot | None = None


@dataclass(frozen=True)
class Reset(Step):
    pass


# Progress weights (fwupd-style): roughly each step's share of a board's time on the user's recipe.
WEIGHTS = {
    StepName.LOAD_FLASHLOADER: 10,
    StepName.WAIT_REPLUG: 5,
    StepName.OPEN: 1,
    StepName.IDENTIFY: 1,
    StepName.TAKE_BOARD_DATA: 1,
    StepName.CONFIGURE_MEMORY: 2,
    StepName.BLANK_CHECK: 5,
    StepName.ERASE: 15,
    StepName.WRITE: 40,
    StepName.VERIFY: 20,
    StepName.BOARD_DATA: 3,
    StepName.FUSES: 3,
    StepName.SECURE_BOOT: 3,
    StepName.RESET: 1,
    StepName.WAIT_REBOOT: 2,
}


# Memories the flashloader maps into the address space take memory id 0 in erase, write and read
# (config/geometry.py); other memories (SPI NOR, SD, eMMC, SEMC NAND) are addressed by their own id.


def page_runs(image: Image) -> list[tuple[int, int]]:
    """(offset, length) of the image's runs of pages holding something other than 0xFF, each run
    starting on a page boundary (offsets relative to the image, which starts on one): found once
    per image, not once per board (`Image.page_runs`, config/geometry.py)."""
    return list(image.page_runs)


def sector_runs(blank: list[bool]) -> list[tuple[int, int]]:
    """(offset, length) of the runs of sectors that are not blank, for one erase each."""
    runs: list[tuple[int, int]] = []
    for index, is_blank in enumerate(blank):
        if is_blank:
            continue
        offset = index * SECTOR_SIZE
        if runs and sum(runs[-1]) == offset:
            runs[-1] = (runs[-1][0], runs[-1][1] + SECTOR_SIZE)
        else:
            runs.append((offset, SECTOR_SIZE))
    return runs


def data_memory_id(memory_id: int) -> int:
    return 0 if memory_id in MAPPED_MEMORY_IDS else memory_id


def plan(recipe: Recipe) -> list[Step]:
    """Every step of the recipe, from a board in its ROM to its reboot."""
    d, w = recipe.deadlines, WEIGHTS
    rom, loader = Stage.ROM, Stage.FLASHLOADER
    steps: list[Step] = []
    if recipe.family.rom_protocol == "sdp":  # i.MX RT: the ROM loads the flashloader first
        steps += [
            LoadFlashloader(
                StepName.LOAD_FLASHLOADER,
                d.load_flashloader_s,
                w[StepName.LOAD_FLASHLOADER],
                rom,
                address=recipe.flashloader_address,
                data=recipe.flashloader,
                jump_address=recipe.jump_address,
                path=recipe.flashloader_path,
            ),
            WaitStage(StepName.WAIT_REPLUG, d.replug_s, w[StepName.WAIT_REPLUG], rom, target=loader),
        ]
    steps += [
        Open(StepName.OPEN, d.command_s, w[StepName.OPEN], loader),
        Identify(
            StepName.IDENTIFY,
            d.command_s,
            w[StepName.IDENTIFY],
            loader,
            internal_flash=recipe.memory_id == INTERNAL_FLASH,
        ),
    ]
    if recipe.board_data:
        steps.append(
            TakeBoardData(
                StepName.TAKE_BOARD_DATA, d.command_s, w[StepName.TAKE_BOARD_DATA], loader, entries=recipe.board_data
            )
        )
    if recipe.memory_id != INTERNAL_FLASH:  # the internal flash is ready without configure-memory
        steps.append(
            ConfigureMemory(
                StepName.CONFIGURE_MEMORY,
                d.command_s,
                w[StepName.CONFIGURE_MEMORY],
                loader,
                memory_id=recipe.memory_id,
                option_address=recipe.option_address,
                option_words=recipe.option_words,
            )
        )
    data_id = data_memory_id(recipe.memory_id)
    for group, image in enumerate(recipe.images):
        retry = Retry.GROUP
        # The minimal write needs the driver's page and sector rules: FlexSPI NOR, aligned images.
        aligned = recipe.memory_id == FLEXSPI_NOR and image.address % SECTOR_SIZE == 0
        blank_check = recipe.blank_check and aligned
        if blank_check:
            steps.append(
                BlankCheck(
                    StepName.BLANK_CHECK,
                    d.data_s(image.erase_length),
                    w[StepName.BLANK_CHECK],
                    loader,
                    retry,
                    group,
                    address=image.erase_start,
                    length=image.erase_length,
                    memory_id=data_id,
                )
            )
        steps.append(
            Erase(
                StepName.ERASE,
                d.erase_s(image.erase_length),
                w[StepName.ERASE],
                loader,
                retry,
                group,
                address=image.erase_start,
                length=image.erase_length,
                memory_id=data_id,
                skip_blank=blank_check,
            )
        )
        steps.append(
            Write(
                StepName.WRITE,
                d.data_s(len(image.data)),
                w[StepName.WRITE],
                loader,
                retry,
                group,
                image=image,
                memory_id=data_id,
                skip_blank_pages=recipe.skip_blank_pages and aligned,
            )
        )
        if recipe.verify:
            steps.append(
                Verify(
                    StepName.VERIFY,
                    d.data_s(len(image.data)),
                    w[StepName.VERIFY],
                    loader,
                    retry,
                    group,
                    image=image,
                    memory_id=data_id,
                )
            )
    if recipe.board_data:
        # Its own group: a transient flash failure re-configures and writes the values again.
        steps.append(
            WriteBoardData(
                StepName.BOARD_DATA,
                d.command_s + d.erase_s(SECTOR_SIZE) * len(recipe.board_data),
                w[StepName.BOARD_DATA],
                loader,
                retry=Retry.GROUP,
                group=len(recipe.images),
                entries=recipe.board_data,
                memory_id=data_id,
                geometry=recipe.geometry,
            )
        )
    if recipe.fuses.policy != "never" and recipe.fuses.words:
        # Reading and judging is cancellable; the burn itself is shielded inside the step.
        steps.append(
            Fuses(StepName.FUSES, d.command_s + len(recipe.fuses.words), w[StepName.FUSES], loader, fuses=recipe.fuses)
        )
    if recipe.secure_boot is not None:
        steps += secure_boot_steps(recipe)
    if recipe.final_action == "reset":
        steps.append(Reset(StepName.RESET, d.command_s, w[StepName.RESET], loader))
    if recipe.final_action == "reset" and recipe.wait_reboot:
        # Otherwise the job ends when the reset is acknowledged and the station watches for the
        # board's return without holding its port.
        steps += [
            WaitStage(
                StepName.WAIT_REBOOT,
                d.reset_replug_s,
                w[StepName.WAIT_REBOOT],
                loader,
                target=Stage.ROM,
                required=False,
            ),
        ]
    return steps


# The stages of [secure_boot], in order, with their gates. Each starts and ends with the board in
# its flashloader; reload and confirm pass through the ROM on the way.
SECURE_BOOT_GATES = {
    "srk": "read SRK_HASH: blank -> burn (shielded, read back); equal -> nothing; other key -> fail, burn nothing",
    "reload": "reset; the ROM loads the signed flashloader again, now against the burned SRK",
    "proof": "the named proof must pass on this board, part still open; a failure never closes",
    "close": "only after the proof passed on this board in this job: burn SEC_CONFIG[1], read back",
    "confirm": "reset; the ROM must say closed; an unsigned flashloader refused; the signed one loads",
    "locks": "last, after the close is confirmed",
}


def secure_boot_steps(recipe: Recipe) -> list[Step]:
    sb = recipe.secure_boot
    assert sb is not None
    d = recipe.deadlines
    reload_s = d.command_s + d.reset_replug_s + d.load_flashloader_s + d.replug_s + d.command_s
    stages = [("srk", d.command_s + 8)]
    if sb.proof is not None:
        stages += [("reload", reload_s), ("proof", 2 * d.command_s)]
    if sb.close == "after-proof":
        stages += [("close", d.command_s + 1), ("confirm", reload_s + d.load_flashloader_s)]
    if sb.locks:
        stages.append(("locks", d.command_s + len(sb.locks)))
    return [
        SecureBootStage(
            StepName.SECURE_BOOT,
            deadline,
            WEIGHTS[StepName.SECURE_BOOT],
            Stage.FLASHLOADER,
            what=what,
            gate=SECURE_BOOT_GATES[what],
            secure_boot=sb,
        )
        for what, deadline in stages
    ]


def steps_from(steps: list[Step], stage: Stage) -> list[Step]:
    """The steps a board that arrives in `stage` still needs (a board already in its flashloader
    skips loading it)."""
    if stage == Stage.FLASHLOADER:
        return [step for step in steps if step.stage == Stage.FLASHLOADER]
    return list(steps)


def group_start(steps: list[Step], index: int) -> int:
    """The index of the first step of the group `steps[index]` belongs to."""
    group = steps[index].group
    return next(i for i, step in enumerate(steps) if step.group == group and step.retry == Retry.GROUP)


def _secure_boot_lines(step: SecureBootStage) -> Iterator[ToolLine]:
    """A secure-boot stage: its gate as a comment, then the commands it may send."""
    yield ToolLine(step, "", (f"secure-boot {step.what}: {step.gate}",))
    sb = step.secure_boot
    if sb is None:
        return
    if step.what == "srk":
        for word in sb.srk:
            yield ToolLine(step, "blhost", ("efuse-read-once", f"{word.index:#x}"))
        for word in sb.srk:  # SRK_HASH from the signed image's CSF (spsdk SrkTable.get_fuse)
            yield ToolLine(step, "blhost", ("efuse-program-once", f"{word.index:#x}", f"{word.value:08x}"))
    elif step.what == "reload":
        yield ToolLine(step, "blhost", ("reset",))
        yield ToolLine(step, "", ("then the ROM loads the signed flashloader again (as load-flashloader above)",))
    elif step.what == "proof":
        prop = f"{sb.proof_property:#x}"
        yield ToolLine(step, "", (f"proof {sb.proof!r}: SUCCESS and no HAB event for both",))
        yield ToolLine(step, "blhost", ("get-property", prop, "0"))
        yield ToolLine(step, "blhost", ("get-property", prop, f"{sb.image.ivt_address:#x}"))
    elif step.what == "close":
        word = sb.close_word
        yield ToolLine(step, "blhost", ("efuse-read-once", f"{word.index:#x}"))
        yield ToolLine(step, "blhost", ("efuse-program-once", f"{word.index:#x}", f"{word.value:08x}"))
        yield ToolLine(step, "blhost", ("efuse-read-once", f"{word.index:#x}"))
    elif step.what == "confirm":
        yield ToolLine(step, "blhost", ("reset",))
        yield ToolLine(step, "sdphost", ("error-status",))
        yield ToolLine(step, "", ("the ROM must answer HAB closed (0x12343412)",))
        yield ToolLine(step, "sdphost", ("write-file", f"{sb.flashloader.ivt_address - 0x400:#x}", "<unsigned copy>"))
        yield ToolLine(step, "sdphost", ("jump-address", f"{sb.flashloader.ivt_address:#x}"))
        yield ToolLine(step, "sdphost", ("error-status",))
        yield ToolLine(step, "", ("must be 0x33333333 (refused); then the signed flashloader must load",))
    elif step.what == "locks":
        for word in sb.locks:
            yield ToolLine(step, "blhost", ("efuse-read-once", f"{word.index:#x}"))
            yield ToolLine(step, "blhost", ("efuse-program-once", f"{word.index:#x}", f"{word.value:08x}"))


# --- the plan as NXP's tools would run it ------------------------------------------------------

MBOOT_UNIQUE_DEVICE_IDENT = 18  # get-property 18: UniqueDeviceIdent
MBOOT_FLASH_SECTOR_SIZE = 5  # get-property 5: FlashSectorSize
MBOOT_FLASH_PAGE_SIZE = 27  # get-property 0x1B: FlashPageSize
MBOOT_EXTERNAL_MEMORY_ATTRIBUTES = 25  # get-property 0x19 MEMORY_ID: ExternalMemoryAttributes


@dataclass(frozen=True)
class ToolLine:
    """One command line of sdphost or blhost, with the step it belongs to."""

    step: Step
    tool: str  # "sdphost" | "blhost" | "" (a wait, printed as a comment)
    args: tuple[str, ...]

    def render(self, ids: str, timeout_ms: int) -> str:
        if not self.tool:
            return "# " + " ".join(self.args)
        return f"{self.tool} -t {timeout_ms} -u {ids} -j -- {' '.join(self.args)}"


def tool_lines(steps: list[Step]) -> Iterator[ToolLine]:
    """The sdphost/blhost commands each step sends, in order."""
    for step in steps:
        match step:
            case LoadFlashloader():
                yield ToolLine(step, "sdphost", ("write-file", f"{step.address:#x}", step.path or "flashloader.bin"))
                yield ToolLine(step, "sdphost", ("jump-address", f"{step.jump_address:#x}"))
            case WaitStage():
                what = "flashloader" if step.target == Stage.FLASHLOADER else "board, rebooted,"
                yield ToolLine(step, "", (f"{step.name}: wait for the {what} to enumerate on the same port",))
            case Open():
                pass  # opening the device is part of every blhost call
            case Identify():
                yield ToolLine(step, "blhost", ("get-property", str(MBOOT_UNIQUE_DEVICE_IDENT)))
                if step.internal_flash:  # its sector and page (board_ops.geometry)
                    yield ToolLine(step, "blhost", ("get-property", str(MBOOT_FLASH_SECTOR_SIZE)))
                    yield ToolLine(step, "blhost", ("get-property", str(MBOOT_FLASH_PAGE_SIZE)))
            case ConfigureMemory():
                for offset, word in enumerate(step.option_words):
                    yield ToolLine(
                        step,
                        "blhost",
                        ("fill-memory", f"{step.option_address + 4 * offset:#x}", "4", f"{word:#010x}", "word"),
                    )
                yield ToolLine(step, "blhost", ("configure-memory", str(step.memory_id), f"{step.option_address:#x}"))
                if step.memory_id == FLEXSPI_NOR:  # the part's page, sector and block (board_ops.geometry)
                    yield ToolLine(
                        step, "blhost", ("get-property", str(MBOOT_EXTERNAL_MEMORY_ATTRIBUTES), str(FLEXSPI_NOR))
                    )
            case BlankCheck():
                memory = (str(step.memory_id),) if step.memory_id else ()
                yield ToolLine(
                    step, "blhost", ("read-memory", f"{step.address:#x}", str(step.length), "blank-check.bin", *memory)
                )
            case Erase(skip_blank=True):
                erase = f"flash-erase-region {step.address:#x} {step.length} {step.memory_id}"
                yield ToolLine(step, "", (f"erase: only the sectors of `{erase}` blank-check.bin shows not blank",))
            case Erase():
                yield ToolLine(
                    step, "blhost", ("flash-erase-region", f"{step.address:#x}", str(step.length), str(step.memory_id))
                )
            case Write(skip_blank_pages=True):
                memory = (str(step.memory_id),) if step.memory_id else ()
                name = step.image.path or "image.bin"
                for offset, length in page_runs(step.image):
                    part = f"{name}[{offset:#x}:{offset + length:#x}]"
                    yield ToolLine(step, "blhost", ("write-memory", f"{step.image.address + offset:#x}", part, *memory))
            case Write():
                memory = (str(step.memory_id),) if step.memory_id else ()  # blhost's default is 0
                yield ToolLine(
                    step,
                    "blhost",
                    ("write-memory", f"{step.image.address:#x}", step.image.path or "image.bin", *memory),
                )
            case Verify():
                memory = (str(step.memory_id),) if step.memory_id else ()
                yield ToolLine(
                    step,
                    "blhost",
                    ("read-memory", f"{step.image.address:#x}", str(len(step.image.data)), "readback.bin", *memory),
                )
            case TakeBoardData():
                for entry in step.entries:
                    origin = (
                        f"the next of {Path(entry.list_file).name}" if entry.list_file else f"counter {entry.format!r}"
                    )
                    yield ToolLine(step, "", (f"board data {entry.name}: {origin}, unique to this board, recorded",))
            case WriteBoardData():
                for entry in step.entries:
                    if entry.fuse is not None:
                        yield ToolLine(
                            step, "blhost", ("efuse-program-once", f"{entry.fuse.index:#x}", f"<{entry.name}>")
                        )
                        continue
                    assert entry.address is not None
                    start, length = step.geometry.span(entry.address, entry.size)
                    yield ToolLine(
                        step, "blhost", ("flash-erase-region", f"{start:#x}", str(length), str(step.memory_id))
                    )
                    yield ToolLine(step, "blhost", ("write-memory", f"{entry.address:#x}", f"{entry.name}.bin"))
                    yield ToolLine(
                        step,
                        "blhost",
                        ("read-memory", f"{entry.address:#x}", str(entry.size), f"{entry.name}-readback.bin"),
                    )
            case Fuses():
                for fuse in step.fuses.words:
                    yield ToolLine(step, "blhost", ("efuse-read-once", f"{fuse.index:#x}"))
                for fuse in step.fuses.words:
                    yield ToolLine(step, "blhost", ("efuse-program-once", f"{fuse.index:#x}", f"{fuse.value:#010x}"))
            case SecureBootStage():
                yield from _secure_boot_lines(step)
            case Reset():
                yield ToolLine(step, "blhost", ("reset",))
