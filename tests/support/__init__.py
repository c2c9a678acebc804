"""What the tests share: a process fixture that drains both pipes, free ports, condition waits
and the line configuration the soak writes too (tools/lineconfig.py)."""

from tools.lineconfig import free_port, write_line_config

from .process import GANGD, Gangd, Process
from .wait import until, wait_for

__all__ = ["GANGD", "Gangd", "Process", "free_port", "until", "wait_for", "write_line_config"]
