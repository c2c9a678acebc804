"""The byte that makes poll() see a queued report is taken back even while it is still on its way.

A byte written to a pty master reaches the slave side later (the kernel moves it from a workqueue;
up to 160 ms on this loaded machine). Reading it back without waiting finds nothing (EAGAIN), which
failed the host's read of a report the board had sent. Here the byte arrives late on purpose.
"""

from __future__ import annotations

import os
import select
import threading

from gangd.sim.hidraw import _take_byte


def test_the_doorbell_byte_is_waited_for_while_in_flight():
    reader, writer = os.pipe()
    os.set_blocking(reader, False)
    late = threading.Timer(0.2, os.write, (writer, b"\0"))
    late.start()
    try:
        _take_byte(reader, timeout=30)
        assert not select.select([reader], [], [], 0)[0], "the byte is consumed, nothing is left"
    finally:
        late.join()
        os.close(reader)
        os.close(writer)
