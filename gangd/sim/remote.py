"""The simulated hub served to a gangd in another process (see gangd/hotplug/sim_socket.py).

One connection at a time, the way one daemon owns a USB bus: a new connection (a restarted
daemon) first gets an add event for every board plugged in now, like a coldplug scan, then live
events. `finished` messages go to the operator, `power-cycle` requests to the port.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import asdict

from gangd.core.events import ADD, PortEvent
from gangd.sim.hub import SimHub

log = logging.getLogger(__name__)


class HubServer:
    def __init__(self, hub: SimHub, path: str, on_finished: Callable[[str, str], None]) -> None:
        self.hub = hub
        self.path = path
        self.on_finished = on_finished
        self._conn: socket.socket | None = None
        self._lock = threading.Lock()
        self._latest: dict[str, PortEvent] = {}
        self.connections = 0
        hub.subscribe(self._on_event)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if os.path.exists(path):
            os.unlink(path)
        self._listener.bind(path)
        self._listener.listen(2)
        threading.Thread(target=self._accept, name="hub-server", daemon=True).start()

    def _send(self, conn: socket.socket, message: dict) -> None:
        try:
            conn.sendall(json.dumps(message).encode() + b"\n")
        except OSError:
            pass  # the daemon died; the next connection gets a fresh coldplug

    def _on_event(self, event: PortEvent) -> None:
        with self._lock:
            self._latest[event.port] = event
            if self._conn is not None:
                self._send(self._conn, {"type": "event", **asdict(event)})

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._conn = conn
                self.connections += 1
                for event in self._latest.values():
                    if event.action == ADD:
                        self._send(conn, {"type": "event", **asdict(event)})
                self._send(conn, {"type": "coldplug-done"})
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        buffer = b""
        while True:
            try:
                chunk = conn.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                with self._lock:
                    if self._conn is conn:
                        self._conn = None
                conn.close()
                return
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                message = json.loads(line)
                if message["type"] == "finished":
                    self.on_finished(message["port"], message["result"])
                elif message["type"] == "power-cycle":
                    threading.Thread(target=self._power_cycle, args=(conn, message["port"]), daemon=True).start()

    def _power_cycle(self, conn: socket.socket, port: str) -> None:
        self.hub.port(port).power_cycle()
        with self._lock:
            self._send(conn, {"type": "power-cycled", "port": port})

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            if self._conn is not None:
                self._conn.close()
