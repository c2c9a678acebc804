"""A free loopback port (kept beside the line configuration in tools/lineconfig.py, for the soak)."""

from tools.lineconfig import free_port

__all__ = ["free_port"]
