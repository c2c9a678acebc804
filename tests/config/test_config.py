"""Configuration: the example is valid, and each mistake gives one located message and status 2."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from gangd.config.loader import ConfigError, load_config
from gangd.sim.images import build_flashloader_image
from tests.helpers import BAD_FLASHLOADERS
from tests.support import GANGD

EXAMPLE = Path(__file__).parents[2] / "config" / "rt1020.toml"

APP = bytes(range(256)) * 176  # 45056 bytes


@pytest.fixture
def line_dir(tmp_path):
    """The example configuration with the files it names."""
    shutil.copy(EXAMPLE, tmp_path / "line.toml")
    (tmp_path / "ivt_flashloader.bin").write_bytes(build_flashloader_image()[0])
    (tmp_path / "app.bin").write_bytes(APP)
    return tmp_path


def edit(directory: Path, old: str, new: str) -> Path:
    path = directory / "line.toml"
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))
    return path


def test_the_example_is_valid(line_dir):
    config = load_config(line_dir / "line.toml")
    assert config.ports == {"1-1.1": "A1", "1-1.2": "A2", "1-1.3": "A3", "1-1.4": "A4"}
    recipe = config.recipe
    assert (recipe.memory_id, recipe.option_address, recipe.option_words) == (9, 0x2000, (0xC000_0007,))
    assert recipe.images[0].address == 0x6000_0000 and recipe.images[0].data == APP
    assert recipe.fuses.policy == "never" and recipe.final_action == "reset"
    assert recipe.quality_marginal == "accept"
    result = subprocess.run([GANGD, "check-config", str(line_dir / "line.toml")], capture_output=True, text=True)
    assert result.returncode == 0 and ": ok" in result.stdout
    # The hashes a line engineer pins ([flashloader] sha256, [[image]] sha256) are printed.
    loader_hash = hashlib.sha256(build_flashloader_image()[0]).hexdigest()
    assert f"jump 0x20000400 (an image vector table) sha256 {loader_hash}" in result.stdout
    assert f"sha256 {hashlib.sha256(APP).hexdigest()}" in result.stdout


SRK = "0x" + "11" * 32

MISTAKES = [
    # (what, old text, new text, the text on the line the message must name (None: no line), fragment)
    ("unknown family", 'family = "mimxrt1020"', 'family = "mimxrt9999"', "mimxrt9999", "unknown family"),
    ("missing flashloader file", 'path = "ivt_flashloader.bin"', 'path = "nope.bin"', "nope.bin", "no such file"),
    ("port syntax", '"1-1.3" = "A3"', '"usb3" = "A3"', "usb3", "not a USB port path"),
    ("duplicate label", '"1-1.4" = "A4"', '"1-1.4" = "A1"', '"1-1.4"', "used twice"),
    ("unknown top-level key", "[final]", "[finale]", "[finale]", "unknown key"),
    ("unknown key in a table", "read_back = true", "readback = true", "readback", "unknown key"),
    ("wrong type", "max_attempts = 3 ", 'max_attempts = "3" ', "max_attempts", "expected int"),
    (
        "flashloader outside RAM",
        "load_address = 0x20000000",
        "load_address = 0x10000000",
        "load_address",
        "not inside one RAM region",
    ),
    (
        "jump outside the flashloader",
        "jump_address = 0x20000400",
        "jump_address = 0x30000400",
        "jump_address",
        "not inside the loaded flashloader",
    ),
    ("unknown memory id", "id = 9 ", "id = 7 ", "id = 7", "not a memory id of the MCU bootloader"),
    ("option word without tag", "options = [0xC0000007]", "options = [0x00000007]", "options =", "0xC tag"),
    ("image missing", 'path = "app.bin"', 'path = "missing.bin"', "missing.bin", "no such file"),
    ("sha256 mismatch", '# sha256 = "..."', 'sha256 = "' + "0" * 64 + '"', 'sha256 = "000', "app.bin has sha256"),
    ("sha256 malformed", '# sha256 = "..."', 'sha256 = "abc"', 'sha256 = "abc"', "64 hexadecimal"),
    ("image outside flash", "address = 0x60000000", "address = 0x50000000", "0x50000000", "outside the flash"),
    ("unknown image format", 'format = "bin"', 'format = "elf"', '"elf"', "is not one of"),
    (
        "unknown fuse name",
        'policy = "never"',
        'policy = "if-blank"\n[fuses.values]\nNOT_A_FUSE = 1',
        "NOT_A_FUSE",
        "no fuse named",
    ),
    (
        "fuse value too wide",
        'policy = "never"',
        'policy = "if-blank"\n[fuses.values]\n"SRK_HASH[31:0]" = 0x1FFFFFFFF',
        "0x1FFFFFFFF",
        "wider than",
    ),
    (
        "values with policy never",
        "# [fuses.values]",
        f'[fuses.values]\nSRK_HASH = "{SRK}"',
        'policy = "never"',
        "policy is 'never'",
    ),
    ("unknown fuse policy", 'policy = "never"', 'policy = "sometimes"', "sometimes", "is not one of"),
    ("final action", 'action = "reset"', 'action = "reboot"', "reboot", "is not one of"),
    ("marginal policy", 'marginal = "accept"', 'marginal = "sometimes"', "sometimes", "is not one of"),
    ("zero attempts", "max_attempts = 3 ", "max_attempts = 0 ", "max_attempts", "at least 1"),
    ("invalid TOML", "[memory]", "[memory", "[memory", "not valid TOML"),
    (
        "flashloader sha256 mismatch",
        '# sha256 = "<sha256sum of the file>"',
        'sha256 = "' + "0" * 64 + '"',
        'sha256 = "000',
        "ivt_flashloader.bin has sha256",
    ),
    (
        "jump to where the flashloader has no IVT",
        "jump_address = 0x20000400",
        "jump_address = 0x20000420",
        'path = "ivt_flashloader.bin"',
        "flashloader.path: no image vector table at 0x20000420",
    ),
    (
        "image running past the FlexSPI window",
        "address = 0x60000000",
        "address = 0x6FFFF000",
        "0x6FFFF000",
        "bytes past the end of the flexspi at 0x60000000",
    ),
    (
        "image larger than the flash part",
        "options = [0xC0000007]",
        "options = [0xC0000007]\nsize = 0x8000",
        "address = 0x60000000",
        "runs 0x3000 bytes past the end of the 32768-byte flash part (memory.size)",
    ),
    ("flash part of no size", "options = [0xC0000007]", "options = [0xC0000007]\nsize = 0", "size = 0", "more than 0"),
    (
        "flash part larger than the window",
        "options = [0xC0000007]",
        "options = [0xC0000007]\nsize = 0x20000000",
        "size = 0x20000000",
        "do not fit mimxrt1020's flexspi window",
    ),
]


def line_containing(path: Path, text: str | None) -> int | None:
    if text is None:
        return None
    return next(n for n, line in enumerate(path.read_text().splitlines(), start=1) if text in line)


@pytest.mark.parametrize("what, old, new, at, fragment", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_each_mistake_gives_one_located_message(line_dir, what, old, new, at, fragment):
    path = edit(line_dir, old, new)
    line = line_containing(path, at)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert fragment in message
    assert message.startswith(f"{path}:{line}: " if line else f"{path}: ")
    result = subprocess.run([GANGD, "check-config", str(path)], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == f"gangd: {message}"  # one message, no traceback


@pytest.mark.parametrize("what, data, fragment, _", BAD_FLASHLOADERS, ids=[b[0] for b in BAD_FLASHLOADERS])
def test_a_flashloader_the_rom_would_refuse_is_refused(line_dir, what, data, fragment, _):
    (line_dir / "ivt_flashloader.bin").write_bytes(data)
    path = line_dir / "line.toml"
    result = subprocess.run([GANGD, "check-config", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = line_containing(path, 'path = "ivt_flashloader.bin"')
    assert result.stderr.startswith(f"gangd: {path}:{line}: flashloader.path: ")
    assert fragment in result.stderr and result.stderr.count("\n") == 1
    assert result.stderr.rstrip().endswith("(the ROM would not start this flashloader)")


def test_an_image_larger_than_the_flash_part(line_dir):
    (line_dir / "app.bin").write_bytes(bytes(8 * 1024 * 1024 + 1))
    path = edit(line_dir, "options = [0xC0000007]", "options = [0xC0000007]\nsize = 0x800000  # W25Q64JV")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    line = line_containing(path, "address = 0x60000000")
    assert str(error.value) == (
        f"{path}:{line}: image[0].address: 0x60000000..+8388609 is outside the flash of mimxrt1020: "
        "it runs 0x1 bytes past the end of the 8388608-byte flash part (memory.size) at 0x60000000"
    )


def test_overlapping_images(line_dir):
    path = edit(line_dir, "[verify]", '[[image]]\npath = "app.bin"\naddress = 0x60001000\n\n[verify]')
    with pytest.raises(ConfigError, match=r"image\[1\]\.address: overlaps image\[0\]"):
        load_config(path)


def test_pinned_image_and_fuses_load(line_dir):
    pin = hashlib.sha256(APP).hexdigest()
    edit(line_dir, '# sha256 = "..."', f'sha256 = "{pin}"')
    loader_pin = hashlib.sha256(build_flashloader_image()[0]).hexdigest()
    edit(line_dir, '# sha256 = "<sha256sum of the file>"', f'sha256 = "{loader_pin.upper()}"')
    edit(line_dir, 'policy = "never"', 'policy = "if-blank"')
    path = edit(line_dir, "# [fuses.values]", f'[fuses.values]\nSRK_HASH = "{SRK}"')
    fuses = load_config(path).recipe.fuses
    assert [w.index for w in fuses.words] == list(range(24, 32))
    assert {w.value for w in fuses.words} == {0x11111111}


def srec_line(address: int, data: bytes) -> str:
    body = bytes([len(data) + 5]) + address.to_bytes(4, "big") + data
    return "S3" + body.hex().upper() + f"{0xFF - sum(body) & 0xFF:02X}"


def test_srec_and_hex_images(line_dir):
    records = [srec_line(0x6000_0000 + 16 * i, APP[16 * i : 16 * i + 16]) for i in range(4)]
    (line_dir / "app.srec").write_text("\n".join(records) + "\nS70500000000FA\n")
    path = edit(line_dir, 'path = "app.bin"\naddress = 0x60000000\nformat = "bin"', 'path = "app.srec"')
    image = load_config(path).recipe.images[0]
    assert (image.address, image.data) == (0x6000_0000, APP[:64])
    # A bad checksum is reported with its line number.
    broken = records[:]
    broken[2] = broken[2][:-2] + "00"
    (line_dir / "app.srec").write_text("\n".join(broken) + "\n")
    with pytest.raises(ConfigError, match=r"app\.srec:3: .*crc"):
        load_config(path)


def test_truncated_hex(line_dir):
    (line_dir / "app.hex").write_text(":020000040000FA\n:10000000000102030405060708090A0B0C0D0E0F78\n")
    path = edit(line_dir, 'path = "app.bin"\naddress = 0x60000000\nformat = "bin"', 'path = "app.hex"')
    with pytest.raises(ConfigError, match="truncated"):
        load_config(path)


def test_more_ports_on_one_root_port_than_its_bandwidth_carries_is_warned(line_dir):
    many = "".join(f'"1-1.{n}" = "B{n}"\n' for n in range(5, 11))  # 10 ports behind root port 1-1
    path = edit(line_dir, '"1-1.4" = "A4"\n', '"1-1.4" = "A4"\n' + many + '"1-2.1" = "C1"\n')
    result = subprocess.run([GANGD, "check-config", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stdout.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "10 ports share root port 1-1" in warnings[0]
    assert "about 8 flashloaders" in warnings[0]


def test_station_name_defaults_to_the_host_name_and_the_line_is_optional(line_dir):
    import socket

    config = load_config(line_dir / "line.toml")
    assert config.station_name == socket.gethostname() and config.line is None
    path = edit(line_dir, '# name = "station-1"', 'name = "station-1"')
    path.write_text(path.read_text() + '[line]\ndatabase = "postgresql://gangd@db.example:5432/line"\n')
    config = load_config(path)
    assert config.station_name == "station-1"
    assert config.line is not None and config.line.database.endswith("/line")
    assert config.line.password_env == "GANGD_LINE_PASSWORD" and config.line.password_file is None


@pytest.mark.parametrize(
    "line, fragment",
    [
        ('database = "postgresql://gangd:hunter2@db/line"', "line.database: must not hold the password"),
        ('database = "mysql://db/line"', "line.database: must be a URL like"),
        ('database = "postgresql://db/line"\npassword_file = "nope.txt"', "line.password_file: no such file"),
        ('database = "postgresql://db/line"\nspeed = 1', "line.speed: unknown key"),
    ],
)
def test_line_mistakes_are_located_and_never_echo_the_password(line_dir, line, fragment):
    path = line_dir / "line.toml"
    path.write_text(path.read_text() + "[line]\n" + line + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert fragment in str(caught.value) and str(path) + ":" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_the_root_port_budget_is_a_setting_that_the_station_and_check_config_follow(line_dir):
    assert load_config(line_dir / "line.toml").flashloaders_per_root_port == 8
    path = edit(line_dir, "flashloaders_per_root_port = 8", "flashloaders_per_root_port = 3")
    assert load_config(path).flashloaders_per_root_port == 3
    result = subprocess.run([GANGD, "check-config", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stdout.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "4 ports share root port 1-1" in warnings[0] and "about 3 flashloaders" in warnings[0]


def test_worker_processes_are_a_station_setting(line_dir):
    assert load_config(line_dir / "line.toml").workers == 0
    path = edit(line_dir, "[station]\n", "[station]\nworkers = 4\n")
    assert load_config(path).workers == 4


@pytest.mark.parametrize("value", ["-1", "65", '"auto"', "1.5"])
def test_a_worker_count_out_of_range_is_located(line_dir, value):
    path = edit(line_dir, "[station]\n", f"[station]\nworkers = {value}\n")
    assert_located(path, "station.workers")


def assert_located(path, setting: str) -> None:
    """check-config refuses `path`: exit 2, one line naming the file and the setting."""
    result = subprocess.run([GANGD, "check-config", str(path)], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert f"{path}:" in line and setting in line, line


@pytest.mark.parametrize("value", ["0", "33", '"eight"', "true"])
def test_a_root_port_budget_out_of_range_is_located(line_dir, value):
    path = edit(line_dir, "flashloaders_per_root_port = 8", f"flashloaders_per_root_port = {value}")
    assert_located(path, "usb.flashloaders_per_root_port")


@pytest.mark.parametrize(
    "old, new, message",
    [
        # A misspelled required key is named as unknown, not reported as the key it was meant to be.
        (
            'path = "ivt_flashloader.bin"',
            'pth = "ivt_flashloader.bin"',
            "flashloader.pth: unknown key (expected one of: jump_address, load_address, path, sha256)",
        ),
        ("id = 9", "idd = 9", "memory.idd: unknown key (expected one of: id, option_address, options, size)"),
        # The keys a table takes are the keys the loader reads, conditional ones included: the
        # top level's are its tables, [[board_data]]'s include `file`, which only a list reads.
        (
            "[final]",
            "[finale]",
            "finale: unknown key (expected one of: board_data, deadlines, family, final, flashloader, fuses, "
            "http, image, line, memory, quality, recovery, secure_boot, station, trace, usb, verify, write)",
        ),
        (
            "[final]",
            '[[board_data]]\nname = "sn"\nsource = "counter"\naddress = 0x60100000\nlenght = 4\n[final]',
            "board_data[0].lenght: unknown key (expected one of: address, encoding, file, format, fuse, name, "
            "size, source, start, step)",
        ),
        # A required key that is simply missing is still named as missing.
        ("jump_address = 0x20000400", "", "flashloader.jump_address: missing"),
        # With two mistakes in one table, the one the flow checks first is named, as before the
        # reader recorded its keys: the source, not the mistyped address after it.
        (
            "[final]",
            '[[board_data]]\nname = "sn"\nsource = "dice"\naddress = true\n[final]',
            "board_data[0].source: 'dice' is not one of counter, list",
        ),
    ],
)
def test_unknown_keys_are_the_keys_the_loader_did_not_read(line_dir, old, new, message):
    path = edit(line_dir, old, new)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value).split(": ", 1)[1] == message


def test_a_table_refuses_a_key_read_after_it_was_checked(tmp_path):
    # Unknown keys are found from what was read: a key read after done() would have been called
    # unknown already, so the reader refuses it rather than let the check miss it.
    from gangd.config.loader import Table, _Reader

    table = Table(_Reader(tmp_path / "x.toml", "[t]\na = 1\n"), {"a": 1}, "t.")
    assert table.get("a", int) == 1
    table.done()
    assert table.get("a", int) == 1
    with pytest.raises(RuntimeError, match=r"t\.b read after done\(\)"):
        table.get("b", int, 0)


def test_check_config_advises_on_host_controllers(line_dir):
    """Ports on two buses (two host controllers, when sysfs does not join them): enumeration lets
    twice the boards per hour through; on one controller behind two root ports, no more than one."""
    path = edit(line_dir, '"1-1.3" = "A3"\n"1-1.4" = "A4"', '"72-1.3" = "A3"\n"72-1.4" = "A4"')
    two = subprocess.run([GANGD, "check-config", str(path)], capture_output=True, text=True)
    assert two.returncode == 0, two.stderr
    assert "bus         2 USB host controllers, 2 root ports" in two.stdout
    assert "controller usb72: 72-1 (2 ports)" in two.stdout
    assert "at most 18,251 boards/h here (9,125 per controller" in two.stdout
    floor_two = two.stdout.split("floor for this recipe: ")[1]
    path = edit(line_dir, '"72-1.3" = "A3"\n"72-1.4" = "A4"', '"1-2.3" = "A3"\n"1-2.4" = "A4"')
    one = subprocess.run([GANGD, "check-config", str(path)], capture_output=True, text=True)
    assert "bus         1 USB host controller, 2 root ports" in one.stdout
    assert "at most 9,125 boards/h here" in one.stdout
    floor_one = one.stdout.split("floor for this recipe: ")[1]
    # the same two boards: on two controllers they enumerate side by side, on one in turn
    assert floor_one.startswith("4 boards plugged at once") and floor_two.startswith("4 boards plugged at once")
    assert float(floor_two.split(" done in ")[1].split(" s")[0]) < float(floor_one.split(" done in ")[1].split(" s")[0])


PACKAGED_HEAD = Path(__file__).parents[2] / "debian" / "gangd.toml.head"


def test_the_packaged_example_names_what_to_edit_until_edited(line_dir):
    """The Debian package's /etc/gangd/gangd.toml is debian/gangd.toml.head followed by the
    example (debian/rules): it must fail check-config at its edit_me line, saying what to edit."""
    head = PACKAGED_HEAD.read_text()
    conffile = line_dir / "line.toml"
    conffile.write_text(head + EXAMPLE.read_text())
    edit_me_line = next(n for n, line in enumerate(head.splitlines(), 1) if line.startswith("edit_me ="))
    result = subprocess.run([GANGD, "check-config", str(conffile)], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"gangd: {conffile}:{edit_me_line}: edit_me: this is the packaged example: set ")
    assert "[station.ports]" in result.stderr and "then delete this edit_me line" in result.stderr
    # The edit: delete the line (the ports and files of this example are this test's own).
    conffile.write_text(conffile.read_text().replace(head.splitlines()[edit_me_line - 1], ""))
    assert load_config(conffile).ports
