from __future__ import annotations

import pytest

from gangd.family import load_family
from gangd.sim import BoardFactory, SimHub, TimingModel
from gangd.sim.images import build_flashloader_image

from .helpers import EventWaiter

INSTANT = TimingModel(time_scale=0)


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
