"""The family matrix: for each family group's example configuration (config/*.toml), check-config
and plan pass, two simulated boards are programmed end to end with an image whose length is not a
multiple of the sector (the flash then holds exactly the image), and for each FlexSPI family a
marginal board is recovered at a clock of that family's own ladder.

The simulated boards take their windows, clock codes, internal flash geometry and flash part from
the same family facts gangd plans with (gangd/config/family_facts), so a gangd that used one
family's constants for another fails here: an RT1020 window on RT1060 (10200), the RT1020's 4 KiB
erase on MCX N (101), a 256-byte page on HyperFlash (20105).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import trio

from gangd.cli import main
from gangd.config.family import load_family
from gangd.config.flexspi import fallback_codes, frequency_table
from gangd.config.loader import load_config
from gangd.config.recipe import Recipe
from gangd.core.results import NO_FAULT
from gangd.service.records import RecordStore
from gangd.sim import BoardFactory, SimHub, TimingModel
from gangd.sim.images import build_flashloader_image
from gangd.sim.source import SimHubSource, SimPortPower
from gangd.station.station import Station

ROOT = Path(__file__).resolve().parents[2]
# 45,056 bytes (the image) and 300 more: a multiple of no sector and of no page.
IMAGE = os.urandom(45_056 + 300)
MARGINAL_MHZ = 100  # the read clock a marginal board's flash is reliable up to
# Where each family's ladder stops for such a board (MHz, code), family_facts/flexspi_clocks.toml:
# 133 -> 100 (code 6) on the RT1021 table (RT1010/1015/1020/1024/1050), 120 -> 80 (code 5) on the
# RT1062 one (RT1040/1060/1064), 133 -> 100 by code 5 on the RT1176's own (code 6 is 120 MHz there).
LADDER_STOP = {
    "mimxrt1010": (100, 6),
    "mimxrt1020": (100, 6),
    "mimxrt1050": (100, 6),
    "mimxrt1060": (80, 5),
    "mimxrt1064": (80, 5),
    "mimxrt1176": (100, 5),
}


@dataclass(frozen=True)
class Case:
    family: str
    config: str  # the family group's example in config/
    flash_part: str = "W25Q64JV"

    @property
    def id(self) -> str:
        return self.family + ("-hyperflash" if self.flash_part == "S26KS512S" else "")


CASES = [
    Case("mimxrt1010", "rt1010.toml"),
    Case("mimxrt1020", "rt1020.toml"),
    Case("mimxrt1050", "rt1050-hyperflash.toml", "S26KS512S"),
    Case("mimxrt1060", "rt1060.toml"),
    Case("mimxrt1064", "rt1064.toml"),
    Case("mimxrt1176", "rt1176.toml"),
    Case("lpc55s69", "lpc55s69.toml"),
    Case("lpc55s16", "lpc55s69.toml"),
    Case("mcxn947", "mcxn947.toml"),
    Case("mcxa153", "mcxa153.toml"),
]


def example(case: Case, directory: Path, extra: str = "", address: int | None = None) -> Path:
    """The group's example configuration for `case.family`, beside a simulator flashloader linked
    where the family's facts say NXP's is, and the test image."""
    text = (ROOT / "config" / case.config).read_text()
    family_line = next(line for line in text.splitlines() if line.startswith("family = "))
    text = text.replace(family_line, f'family = "{case.family}"')
    if address is not None:
        image_address = next(line for line in text.splitlines() if line.startswith("address = "))
        text = text.replace(image_address, f"address = {address:#x}")
    text = text.replace('path = "ivt_flashloader.bin"', 'path = "fl.bin"')
    facts = load_family(case.family).facts
    assert facts is not None
    if facts.flashloader_load is not None:
        assert facts.flashloader_jump is not None
        loader, jump = build_flashloader_image(
            load_address=facts.flashloader_load, ivt_offset=facts.flashloader_jump - facts.flashloader_load
        )
        assert f"load_address = {facts.flashloader_load:#x}" in text.lower()
        assert jump == facts.flashloader_jump
        (directory / "fl.bin").write_bytes(loader)
    (directory / "app.bin").write_bytes(IMAGE)
    path = directory / f"{case.family}.toml"
    path.write_text(text + extra)
    return path


async def program(
    path: Path,
    case: Case,
    nursery,
    faults: tuple[str, ...] = (),
    recipe: Recipe | None = None,
    records: RecordStore | None = None,
) -> tuple[list, list]:
    """Every configured port's board programmed once (with the configuration's recipe, or
    `recipe`): (results, boards)."""
    config = load_config(path)
    recipe = recipe or config.recipe
    family = recipe.family
    factory = BoardFactory(family, TimingModel(time_scale=0), seed=31, faults=faults, flash_part=case.flash_part)
    with SimHub(list(config.ports), seed=3) as hub:
        boards = [hub.plug(port, factory()) for port in config.ports]
        station = Station(family, recipe, config.ports, records=records, power=SimPortPower(hub))
        done = trio.Event()
        station.listeners.append(lambda _: done.set() if len(station.results) == len(boards) else None)
        scope = trio.CancelScope()

        async def run(task_status=trio.TASK_STATUS_IGNORED) -> None:
            with scope:
                await station.run(SimHubSource(hub).run, task_status=task_status)

        await nursery.start(run)
        with trio.fail_after(30):
            await done.wait()
        scope.cancel()
        return list(station.results), boards


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
@pytest.mark.trio
async def test_a_family_is_checked_planned_and_programmed(case, tmp_path, nursery, capsys):
    path = example(case, tmp_path)
    assert main(["check-config", str(path)]) == 0, capsys.readouterr().err
    assert "warning" not in capsys.readouterr().out  # e.g. a flashloader away from where NXP's is linked
    assert main(["plan", str(path)]) == 0, capsys.readouterr().err
    config = load_config(path)
    image = config.recipe.images[0]
    assert len(image.data) % config.recipe.geometry.sector_size != 0
    results, boards = await program(path, case, nursery)
    assert len(results) >= 2 and {r.result for r in results} == {"success"}, [r.reason for r in results]
    for board in boards:
        assert board.flash_image(image.address, len(IMAGE)) == IMAGE
        assert not [c for c in board.log if c.status not in (0, None)]  # no alignment error, no retry


FLEXSPI_CASES = [c for c in CASES if load_family(c.family).facts.clocks is not None]  # type: ignore[union-attr]


@pytest.mark.parametrize("case", FLEXSPI_CASES, ids=[c.id for c in FLEXSPI_CASES])
@pytest.mark.trio
async def test_a_marginal_board_is_recovered_at_a_clock_of_its_familys_ladder(case, tmp_path, nursery):
    path = example(case, tmp_path)
    results, boards = await program(path, case, nursery, faults=(f"marginal-read:max-mhz={MARGINAL_MHZ}",))
    table = frequency_table(case.family)
    ladder = [(table[code], code) for code in [7, *fallback_codes(case.family, 7)]]
    expected = max(step for step in ladder if step[0] <= MARGINAL_MHZ)
    assert expected == LADDER_STOP[case.family]  # the family's own mcu-boot table, not the RT1020's
    for result, board in zip(results, boards, strict=True):
        assert result.result == "success" and result.marginal, result.reason
        assert result.flash_clock_mhz == expected[0]
        assert board.flash_image(config_address(path), len(IMAGE)) == IMAGE


def config_address(path: Path) -> int:
    return load_config(path).recipe.images[0].address


@pytest.mark.parametrize(
    "case, offset",
    [
        (Case("mcxn947", "mcxn947.toml"), 0x2040),  # inside an 8 KiB sector, off a 128-byte page
        (Case("lpc55s69", "lpc55s69.toml"), 0x1100),  # off a 512-byte page
        (Case("mimxrt1050", "rt1050-hyperflash.toml", "S26KS512S"), 0x100),  # off a 512-byte HyperFlash page
        (Case("mimxrt1060", "rt1060.toml"), 0x1010),  # off a 256-byte page and a 4 KiB sector
    ],
    ids=["mcxn947", "lpc55s69", "mimxrt1050-hyperflash", "mimxrt1060"],
)
@pytest.mark.trio
async def test_an_image_off_the_familys_alignment_is_written_exactly(case, offset, tmp_path, nursery):
    base = load_config(example(case, tmp_path)).recipe.images[0].address
    path = example(case, tmp_path, address=base + offset)
    results, boards = await program(path, case, nursery)
    assert len(results) >= 2 and {r.result for r in results} == {"success"}, [r.reason for r in results]
    for board in boards:
        assert board.flash_image(base + offset, len(IMAGE)) == IMAGE
        assert not [c for c in board.log if c.status not in (0, None)]


@pytest.mark.parametrize("family", ["mimxrt1176", "lpc55s69", "mcxn947"])
def test_secure_boot_is_refused_where_gangd_does_not_model_it(family, tmp_path, capsys):
    case = next(c for c in CASES if c.family == family)
    path = example(case, tmp_path, extra="\n[secure_boot]\nclose = false\n")
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"not supported for {family} yet" in err[0] and "secure_boot" in err[0]


def test_a_family_without_facts_is_one_line_naming_it_and_what_is_missing(tmp_path, capsys):
    case = Case("mimxrt1043", "rt1020.toml")  # in spsdk's database, not in gangd's facts
    text = (ROOT / "config" / "rt1020.toml").read_text().replace('family = "mimxrt1020"', 'family = "mimxrt1043"')
    shutil.copy(ROOT / "config" / "app.bin", tmp_path / "app.bin")
    path = tmp_path / f"{case.family}.toml"
    path.write_text(text)
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ":6: family: gangd has no family facts for mimxrt1043" in err[0]
    assert "FlexSPI window its ROM boots from" in err[0] and "gangd families" in err[0]


def test_an_image_outside_the_window_the_rom_boots_from_is_a_warning(tmp_path, capsys):
    case = next(c for c in CASES if c.family == "mimxrt1064")
    path = example(case, tmp_path, address=0x6000_0000).parent / "rt1064.toml"
    text = example(case, tmp_path, address=0x6000_0000).read_text().replace("size = 0x400000", "")
    path.write_text(text)
    assert main(["check-config", str(path)]) == 0
    warning = [line for line in capsys.readouterr().out.splitlines() if "warning" in line]
    assert len(warning) == 1
    assert "image[0].address: 0x60000000 is in mimxrt1064's flexspi window" in warning[0]
    assert "not in flexspi2 at 0x70000000, where its ROM boots from" in warning[0]


@pytest.mark.trio
async def test_the_geometry_the_board_answers_wins_over_the_planned_one(tmp_path, nursery):
    """An MCX N947 planned as if it had the RT1020's 4 KiB sectors and 256-byte pages (a wrong or
    missing fact) is still erased by the 8 KiB sectors it answers to get-property 5 and 0x1B."""
    case = Case("mcxn947", "mcxn947.toml")
    path = example(case, tmp_path, address=0x1000)  # on a 4 KiB sector, inside an 8 KiB one
    config = load_config(path)
    wrong = replace(config.recipe.geometry, sector_size=4096, page_size=256, source="wrong")
    recipe = replace(config.recipe, geometry=wrong, images=tuple(i.on(wrong) for i in config.recipe.images))
    results, boards = await program(path, case, nursery, recipe=recipe)
    assert {r.result for r in results} == {"success"}, [r.reason for r in results]
    for board in boards:
        assert board.flash_image(0x1000, len(IMAGE)) == IMAGE
        erases = board.commands("flash-erase-region")
        assert [(c.args[0] % 8192, c.args[1] % 8192) for c in erases] == [(0, 0)]


@pytest.mark.trio
async def test_an_internal_flash_read_back_failure_is_retried_and_diagnosed_as_such(tmp_path, nursery):
    """No FlexSPI on an MCX A153: a verify that reads wrong once is no read clock to lower; the
    diagnosis says so and the group is erased and written again."""
    case = Case("mcxa153", "mcxa153.toml")
    path = example(case, tmp_path)
    results, boards = await program(path, case, nursery, faults=("corrupt-readback:nth=1",))
    for result, board in zip(results, boards, strict=True):
        assert result.result == "success" and not result.marginal, result.reason
        assert [(d.finding, d.step) for d in result.diagnoses] == [(NO_FAULT, "verify")]
        assert "internal flash of mcxa153: no FlexSPI read clock to lower" in result.diagnoses[0].detail
        assert len(board.commands("flash-erase-region")) == 2  # the group ran again from its erase
        assert board.flash_image(0, len(IMAGE)) == IMAGE


def test_an_erase_past_the_end_of_a_flash_that_ends_mid_sector_is_a_warning(tmp_path, capsys):
    """LPC55S16's 244 KiB of flash (spsdk) in 32 KiB sectors (our choice, as LPC55S69): an image in
    its last, partial sector is erased up to 0x40000, past the flash's end at 0x3d000."""
    case = Case("lpc55s16", "lpc55s69.toml")
    assert main(["check-config", str(example(case, tmp_path, address=0x20000))]) == 0
    assert "warning" not in capsys.readouterr().out  # 0x20000..+45356 ends in a whole sector
    assert main(["check-config", str(example(case, tmp_path, address=0x30000))]) == 0
    warning = [line for line in capsys.readouterr().out.splitlines() if "warning" in line]
    assert len(warning) == 1 and "image[0].address: 0x00030000..+45356" in warning[0]
    assert "sectors up to 0x00040000, past the end of lpc55s16's internal-flash_ns at 0x0003d000" in warning[0]


def test_a_flashloader_away_from_where_nxps_is_linked_is_a_warning(tmp_path, capsys):
    case = next(c for c in CASES if c.family == "mimxrt1176")
    path = example(case, tmp_path)
    loader, jump = build_flashloader_image(load_address=0x2000_0000)  # the RT10xx convention
    (tmp_path / "fl.bin").write_bytes(loader)
    text = path.read_text().replace("load_address = 0x20001C00", "load_address = 0x20000000")
    path.write_text(text.replace("jump_address = 0x20001C00", f"jump_address = {jump:#x}"))
    assert main(["check-config", str(path)]) == 0
    warning = [line for line in capsys.readouterr().out.splitlines() if "warning" in line]
    assert len(warning) == 1 and "flashloader.load_address: 0x20000000 (jump 0x20000400)" in warning[0]
    assert "where NXP's flashloader for mimxrt1176 is linked: 0x20001c00" in warning[0]


@pytest.mark.trio
async def test_a_serial_off_the_page_is_written_to_internal_flash(tmp_path, nursery):
    """Per-board data at an address off MCX N's 128-byte page, in a sector of its own."""
    case = Case("mcxn947", "mcxn947.toml")
    extra = '\n[[board_data]]\nname = "serial"\nsource = "counter"\nformat = "SN{:08d}"\naddress = 0x20010\nsize = 16\n'
    path = example(case, tmp_path, extra=extra)
    store = RecordStore(tmp_path / "records.sqlite")
    results, boards = await program(path, case, nursery, records=store)
    store.close()
    assert {r.result for r in results} == {"success"}, [r.reason for r in results]
    values = sorted(board.flash_image(0x20010, 10) for board in boards)
    assert values == [b"SN00000001", b"SN00000002"]
