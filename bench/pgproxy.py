"""A counting TCP proxy in front of PostgreSQL: round trips and statements per request.

pg_stat_statements needs `shared_preload_libraries` (a restart of the shared cluster), so
the bench counts on the wire instead. A probe instance of each server connects through
this proxy (the timed instances connect directly, so the proxy costs them nothing):
- a round trip is a burst of client messages sent after the server last spoke (the
  client then waits), whatever the messages are (`Q`, `Parse/Bind/Execute/Sync`, a
  prepare's `Describe/Flush`);
- statements are `Q` (simple query) + `E` (execute) messages;
- transactions are the explicit ones (`BEGIN`/`START TRANSACTION`; statements outside
  one are their own and not counted).
SSL is refused (`N`) so the stream stays readable.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from dataclasses import dataclass, field

SSL_REQUEST = 80877103
GSS_REQUEST = 80877104


@dataclass
class Counts:
    round_trips: int = 0
    statements: int = 0
    #: explicit transactions: simple queries starting BEGIN / START TRANSACTION
    transactions: int = 0
    by_type: dict[str, int] = field(default_factory=dict)


class CountingProxy:
    def __init__(self, upstream_host: str = "127.0.0.1", upstream_port: int = 5432) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.counts = Counts()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        """Stops listening and ends the relayed connections (their tasks finish here, not
        at the event loop's shutdown, which would log each as a cancelled callback)."""
        if self._server is not None:
            self._server.close()
        for connection in self._connections:
            connection.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    def reset(self) -> Counts:
        counts, self.counts = self.counts, Counts()
        return counts

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
            task.add_done_callback(self._connections.discard)
        try:
            # startup: possibly SSL/GSS requests (refused), then the startup message
            while True:
                head = await reader.readexactly(8)
                length, code = struct.unpack("!ii", head)
                if code in (SSL_REQUEST, GSS_REQUEST):
                    writer.write(b"N")
                    await writer.drain()
                    continue
                startup = head + await reader.readexactly(length - 8)
                break
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except (asyncio.IncompleteReadError, OSError):
            writer.close()
            return
        up_writer.write(startup)
        state = {"server_spoke": True, "ready": False}

        async def client_to_server() -> None:
            buffer = b""
            while data := await reader.read(65536):
                up_writer.write(data)
                if state["server_spoke"] and state["ready"]:
                    self.counts.round_trips += 1
                state["server_spoke"] = False
                buffer += data
                while len(buffer) >= 5:
                    kind = buffer[0:1].decode("latin-1")
                    (length,) = struct.unpack("!i", buffer[1:5])
                    if len(buffer) < 1 + length:
                        break
                    message, buffer = buffer[5 : 1 + length], buffer[1 + length :]
                    if state["ready"]:
                        self.counts.by_type[kind] = self.counts.by_type.get(kind, 0) + 1
                        if kind in ("Q", "E"):
                            self.counts.statements += 1
                        if kind == "Q" and message[:5].upper() in (b"BEGIN", b"START"):
                            self.counts.transactions += 1
                await up_writer.drain()
            up_writer.close()

        async def server_to_client() -> None:
            while data := await up_reader.read(65536):
                writer.write(data)
                state["server_spoke"] = True
                # authentication and parameters come first; ReadyForQuery ('Z') ends them
                if not state["ready"] and b"Z\x00\x00\x00\x05" in data:
                    state["ready"] = True
                await writer.drain()
            writer.close()

        tasks = [
            asyncio.ensure_future(client_to_server()),
            asyncio.ensure_future(server_to_client()),
        ]
        # cancelled by `stop`: the relay ends here, normally (a cancelled connection task
        # is logged as an error by asyncio's stream callback)
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for relay in tasks:
            relay.cancel()
        for stream in (writer, up_writer):
            with contextlib.suppress(Exception):
                stream.close()
