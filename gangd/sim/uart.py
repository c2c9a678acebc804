"""A simulated board on a pseudo-terminal, so spsdk's `blhost -p` and `sdphost -p` drive it unchanged.

In the ROM stage the pty speaks SDP over UART; after a jump (and the re-enumeration delay) the
same pty speaks the MCU bootloader's UART framing, exactly as a real board's UART does. A reset
brings it back to the ROM.
"""

from __future__ import annotations

import logging
import os
import threading
import tty

from gangd.sim.board import ROM, LeaveStage, SimBoard, Unplugged
from gangd.sim.flashloader import FlashloaderEngine
from gangd.sim.links import LinkClosed, MbootUartLink, PortClosed, SdpUartLink, UartChannel
from gangd.sim.rom import RomEngine

log = logging.getLogger(__name__)


class UartBoard:
    def __init__(self, board: SimBoard) -> None:
        self.board = board
        self._master, slave = os.openpty()
        tty.setraw(slave)  # no line discipline between the host's bytes and the board
        self.path = os.ttyname(slave)
        # The board keeps no descriptor of the slave: when the host closes the port, the master
        # reads EIO, which tells the board the host has gone (links.PortClosed; the settings
        # above stay with the pty while the master is open).
        os.close(slave)
        self._thread = threading.Thread(target=self._serve, name=f"sim-uart-{self.path}", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> UartBoard:
        self._thread.start()
        return self

    def _serve(self) -> None:
        board = self.board
        channel = UartChannel(self._master, board.clock, board.unplugged)
        try:
            while not board.unplugged.is_set():
                try:
                    if board.stage == ROM and board.family.rom_protocol == "sdp":
                        RomEngine(board, SdpUartLink(channel)).serve()
                    else:
                        FlashloaderEngine(board, MbootUartLink(channel)).serve()
                except LeaveStage as leave:
                    board.clock.settle()  # it leaves at its modelled time, owing nothing
                    board.unplugged.wait(board.clock.model.reenumeration_s * board.clock.model.time_scale)
                    board.clock.idle()  # away: nothing is owed for it
                    channel.discard_input()
                    if not leave.reappear:
                        board.unplugged.wait()
                        return
                    board.enter(leave.next_stage)
                except Unplugged:
                    board.clock.settle()
                    return
                except PortClosed:
                    continue  # the host left in the middle of a command (SDP data): serve the next one
        except LinkClosed:
            return
        except Exception as exc:  # a simulator bug: report it rather than die silently
            log.exception("simulated UART board %s crashed", board.serial)
            self.error = exc

    def close(self) -> None:
        self.board.unplugged.set()
        self._thread.join(timeout=5)
        try:
            os.close(self._master)
        except OSError:
            pass

    def __enter__(self) -> UartBoard:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
