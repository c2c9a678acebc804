"""The world of a station on real boards: boards found through udev on the configured ports, their
hub ports' power switched through sysfs when the recipe allows it."""

from __future__ import annotations

from gangd.config.loader import Config
from gangd.io.power import SysfsPortPower
from gangd.io.topology import host_controllers
from gangd.io.udev import BoardFilter, UdevSource
from gangd.service.world import World


def hardware_world(config: Config) -> World:
    family = config.recipe.family
    return World(
        recipe=config.recipe,
        ports=dict(config.ports),
        source=UdevSource(BoardFilter(family.rom_usb + family.flashloader_usb, config.ports)).run,
        power=SysfsPortPower() if config.recipe.recovery.power_cycle else None,
        config=config,
        layout=config.layout,
        controllers=host_controllers(config.ports),
    )
