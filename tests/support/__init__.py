"""What the tests share: a process fixture that drains both pipes, free ports, condition waits
and the line configuration the soak writes too (tools/lineconfig.py)."""

from tools.lineconfig import free_port, write_line_config

from .process import GANGD, Gangd, Process
from .wait import until, wait_for


def simulated_run(ports: int, state_dir, *extra: str) -> list[str]:
    """`gangd run --simulate PORTS` at time scale 0.2, a quick operator, its own state directory and
    a free HTTP port: the command a test runs as a process."""
    return [
        GANGD,
        "run",
        "--simulate",
        str(ports),
        "--time-scale",
        "0.2",
        "--replace-delay",
        "0.5",
        "--state-dir",
        str(state_dir),
        "--metrics-address",
        f"127.0.0.1:{free_port()}",
        *extra,
    ]


__all__ = ["GANGD", "Gangd", "Process", "free_port", "simulated_run", "until", "wait_for", "write_line_config"]
