"""A TCP proxy that can cut a process off from a server the way a network partition does: while
cut, bytes stop flowing both ways on every connection and new connections hang, with no reset and
no error (the client only sees silence); healed, the stale connections are reset and new ones flow."""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit, urlunsplit


@dataclass
class TcpProxy:
    upstream_host: str       # a host name, or the directory of a Unix socket (embedded PostgreSQL)
    upstream_port: int
    port: int = 0
    bind: str = "127.0.0.1"  # the address to listen on (a network namespace's gateway, for one)
    _server: asyncio.Server | None = None
    _open: set[asyncio.StreamWriter] = field(default_factory=set)
    _flowing: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> TcpProxy:
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, self.bind, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def cut(self) -> None:
        self._flowing.clear()

    def heal(self) -> None:
        """Reset every connection that lived through the cut (their streams are out of step), then flow."""
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()
        self._flowing.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open.add(writer)
        await self._flowing.wait()
        if writer.transport.is_closing():
            return
        try:
            if self.upstream_host.startswith("/"):
                path = os.path.join(self.upstream_host, f".s.PGSQL.{self.upstream_port}")
                up_reader, up_writer = await asyncio.open_unix_connection(path)
            else:
                up_reader, up_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self._open.add(up_writer)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                data = await src.read(65536)
                if not data:
                    break
                await self._flowing.wait()      # a partition: the bytes go nowhere until healed
                if dst.transport.is_closing():
                    break
                dst.write(data)
                await dst.drain()
        dst.transport.abort()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.heal()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()



async def postgres_proxy(url: str, bind: str = "127.0.0.1") -> tuple[TcpProxy, str]:
    """A started proxy to the PostgreSQL server of `url` (TCP or Unix socket), listening on `bind`,
    and the URL that reaches the same database through it."""
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    host = query.pop("host", parts.hostname or "127.0.0.1")
    port = int(query.pop("port", parts.port or 5432))
    proxy = await TcpProxy(host, port, bind=bind).start()
    user = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    rest = "&".join(f"{k}={v}" for k, v in query.items())
    return proxy, urlunsplit((parts.scheme, f"{user}{bind}:{proxy.port}", parts.path, rest, ""))
