"""A TCP relay on 127.0.0.1 that a test can cut with resets, to break a link for real."""

from __future__ import annotations

import asyncio
import threading

from cores.common.reset import reset


class TcpProxy:
    """Relays 127.0.0.1:<port> to a target; ``reset_all()`` aborts every connection with RST."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.accepting = True
        self._writers: list[asyncio.StreamWriter] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> TcpProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        self._loop.run_until_complete(server.wait_closed())
        for task in asyncio.all_tasks(self._loop):
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*asyncio.all_tasks(self._loop), return_exceptions=True))
        self._loop.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.accepting:
            self._abort(writer)
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            self._abort(writer)
            return
        self._writers += [writer, upstream_writer]
        await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    @staticmethod
    def _abort(writer: asyncio.StreamWriter) -> None:
        reset(writer.transport)  # RST, not FIN: the peer sees a reset link

    def reset_all(self, accept: bool = False) -> None:
        """Reset every relayed connection; refuse new ones until ``restore()``."""
        def cut() -> None:
            self.accepting = accept
            for writer in self._writers:
                self._abort(writer)
            self._writers.clear()

        self._loop.call_soon_threadsafe(cut)

    def restore(self) -> None:
        self._loop.call_soon_threadsafe(setattr, self, "accepting", True)

    def stop(self) -> None:
        self.reset_all()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
