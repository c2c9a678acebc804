"""A line's configuration: the validated TOML (`loader`), the recipe it becomes, images, families."""

from gangd.config.loader import Config, ConfigError, load_config

__all__ = ["Config", "ConfigError", "load_config"]
