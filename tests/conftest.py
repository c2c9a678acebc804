from __future__ import annotations

import gc
import os

import pytest

from gangd.config.family import load_family
from gangd.config.recipe import Deadlines, builtin_rt1020
from gangd.sim import BoardFactory, SimHub, TimingModel
from gangd.sim.images import build_flashloader_image

from .helpers import EventWaiter
from .support import Process

INSTANT = TimingModel(time_scale=0)
IMAGE = os.urandom(45056)
# Deadlines short enough for tests at time scale 0, long enough never to fire on a healthy board.
TEST_DEADLINES = Deadlines(
    load_flashloader_s=5, replug_s=2, command_s=2, per_byte_s=0, per_erase_sector_s=0, reset_replug_s=2
)


@pytest.fixture
def recipe(flashloader_image):
    """The built-in RT1020 flow with the test image and test deadlines."""
    image, jump = flashloader_image
    return builtin_rt1020(IMAGE, image, jump, deadlines=TEST_DEADLINES)


@pytest.fixture(scope="session")
def rt1020():
    return load_family("mimxrt1020")


@pytest.fixture(scope="session")
def flashloader_image():
    """(image bytes, IVT address) of a flashloader for the RT1020's DTCM."""
    return build_flashloader_image(load_address=0x2000_0000)


@pytest.fixture
def hub():
    with SimHub(8, seed=1) as sim_hub:
        yield sim_hub
        assert not sim_hub.errors, f"the simulator crashed: {sim_hub.errors}"


@pytest.fixture
def events(hub):
    return EventWaiter(hub)


@pytest.fixture
def boards(rt1020):
    """A factory of instant-timing RT1020 boards; call with faults=(...) for a faulty one."""

    def make(faults: tuple[str, ...] = (), timing: TimingModel = INSTANT, **fields):
        return BoardFactory(rt1020, timing, seed=7, faults=faults, **fields)()

    return make


@pytest.fixture(scope="session")
def hab_keys(tmp_path_factory):
    """An SRK CA (four keys), a CSF and an image key, made with spsdk (tests/hab.py)."""
    from .hab import make_keys

    return make_keys(tmp_path_factory.mktemp("hab-keys"))


@pytest.fixture(scope="session")
def signed_loader(hab_keys):
    """(bytes, jump address) of the simulator's flashloader signed with `hab_keys`."""
    from .hab import signed_flashloader

    return signed_flashloader(hab_keys)


@pytest.fixture(scope="session")
def signed_app(hab_keys):
    """An application signed with `hab_keys`, for FlexSPI NOR at 0x60000000."""
    from .hab import signed_image

    return signed_image(hab_keys)


def srk_faults(table) -> tuple[str, ...]:
    """Fault specs that pre-burn the SRK_HASH words of an spsdk SrkTable into a simulated board."""
    return tuple(f"otp:index={0x18 + i},value={table.get_fuse(i)}" for i in range(8))


@pytest.fixture
def processes():
    """start(command, env=..., log=...) -> a running Process (tests/support/process.py), both of
    its pipes drained; every one still running is stopped (SIGTERM, then SIGKILL) when the test ends."""
    started: list[Process] = []

    def start(command: list[str], **options) -> Process:
        process = Process(command, **options)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture(autouse=True)
def _collector_as_it_was():
    """A test that runs the daemon's serve loop in this process settles its collector
    (gangd/service/collector.py): the next test gets CPython's defaults back."""
    threshold = gc.get_threshold()
    yield
    gc.set_threshold(*threshold)
