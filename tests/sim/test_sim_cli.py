"""`gangd sim` prints hotplug events as JSON lines that a reader can parse, whichever port's thread
emits them: two events once shared a line under load, and the test reading them lost every later
event."""

from __future__ import annotations

import io
import json
import threading

from gangd.cli.sim import json_lines
from gangd.core.events import ADD, PortEvent


class RecordingStream(io.StringIO):
    """A text stream that keeps each write() call apart."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def test_each_event_is_written_as_one_whole_line():
    stream = RecordingStream()
    emit = json_lines(stream)
    start = threading.Barrier(8)

    def port(n: int) -> None:
        start.wait()
        for i in range(50):
            emit(PortEvent(ADD, f"1-1.{n}", 0x1FC9, 0x0130, f"SIM{n:03d}{i:03d}", f"/dev/hidraw{i}"))

    threads = [threading.Thread(target=port, args=(n,)) for n in range(1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert all(text.endswith("\n") and text.count("\n") == 1 for text in stream.writes)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 400
    events = [json.loads(line) for line in lines]
    assert {event["serial"] for event in events} == {f"SIM{n:03d}{i:03d}" for n in range(1, 9) for i in range(50)}
