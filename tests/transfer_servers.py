"""File servers for firmware and diagnostics tests, on 127.0.0.1 in the test's event loop (so they
run on virtual time): a small HTTP(S) server and a small FTP server (passive mode), each with files
to serve, a record of what was uploaded, and ways to misbehave: ``refuse`` (close at once / 421),
``break_after`` (send that many bytes of a file, then drop the connection), ``status`` (HTTP status
for every request), ``no_put`` (HTTP 405 to PUT: the client must POST), ``delay`` (HTTP: answer late).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from dataclasses import dataclass, field


@dataclass
class HttpFileServer:
    files: dict[str, bytes] = field(default_factory=dict)
    uploads: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # the loop's time of each request
    refuse: bool = False
    break_after: int | None = None
    status: int | None = None
    no_put: bool = False
    delay: float = 0.0  # seconds before each answer (a slow server)
    port: int = 0
    ssl: ssl.SSLContext | None = None

    async def start(self) -> HttpFileServer:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0, ssl=self.ssl)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def url(self, path: str) -> str:
        return f"{'https' if self.ssl else 'http'}://127.0.0.1:{self.port}{path}"

    async def close(self) -> None:
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self.refuse:
                return
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            method, path, _ = head.split("\r\n", 1)[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in
                       (line.partition(":") for line in head.split("\r\n")[1:] if line)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append((method, path))
            self.times.append(asyncio.get_running_loop().time())
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.status is not None:
                await self._answer(writer, self.status, b"")
            elif method == "GET" and path in self.files:
                data = self.files[path]
                if self.break_after is not None:
                    writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data[:self.break_after])
                    await writer.drain()
                    return
                await self._answer(writer, 200, data)
            elif method == "PUT" and self.no_put:
                await self._answer(writer, 405, b"")
            elif method in ("PUT", "POST"):
                if self.break_after is not None:
                    return
                if method == "POST":
                    m = re.search(rb'filename="([^"]+)"\r\n[^\r]*\r\n\r\n', body)
                    assert m, body[:200]
                    boundary = headers["content-type"].split("boundary=")[1].encode()
                    path = path.rstrip("/") + "/" + m.group(1).decode()
                    body = body[m.end():body.rindex(b"\r\n--" + boundary)]
                self.uploads[path] = body
                await self._answer(writer, 201, b"")
            else:
                await self._answer(writer, 404, b"")
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _answer(writer: asyncio.StreamWriter, status: int, data: bytes) -> None:
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
        await writer.drain()


@dataclass
class FtpFileServer:
    files: dict[str, bytes] = field(default_factory=dict)
    uploads: dict[str, bytes] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    user: str = "anonymous"
    password: str | None = None  # None: any password
    refuse: bool = False
    break_after: int | None = None
    port: int = 0

    async def start(self) -> FtpFileServer:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def url(self, path: str, user: str | None = None, password: str | None = None) -> str:
        cred = f"{user}:{password}@" if user else ""
        return f"ftp://{cred}127.0.0.1:{self.port}{path}"

    async def close(self) -> None:
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _client(self, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        def say(line: str) -> None:
            w.write(line.encode() + b"\r\n")

        data_conn: asyncio.Future | None = None
        data_server: asyncio.Server | None = None
        logged_in = False
        try:
            if self.refuse:
                say("421 Service not available")
                await w.drain()
                return
            say("220-test FTP server")
            say("220 ready")
            user = None
            while line := (await reader.readline()).decode().rstrip("\r\n"):
                self.commands.append(line)
                cmd, _, arg = line.partition(" ")
                cmd = cmd.upper()
                if cmd == "USER":
                    user = arg
                    say("331 password please")
                elif cmd == "PASS":
                    if user == self.user and (self.password is None or arg == self.password):
                        logged_in = True
                        say("230 logged in")
                    else:
                        say("530 login incorrect")
                elif not logged_in:
                    say("530 not logged in")
                elif cmd == "TYPE":
                    say("200 binary")
                elif cmd in ("EPSV", "PASV"):
                    data_conn = asyncio.get_running_loop().create_future()

                    def accepted(r: asyncio.StreamReader, dw: asyncio.StreamWriter, f: asyncio.Future = data_conn) -> None:
                        if not f.done():
                            f.set_result((r, dw))

                    data_server = await asyncio.start_server(accepted, "127.0.0.1", 0)
                    port = data_server.sockets[0].getsockname()[1]
                    if cmd == "EPSV":
                        say(f"229 Entering Extended Passive Mode (|||{port}|)")
                    else:
                        say(f"227 Entering Passive Mode (127,0,0,1,{port // 256},{port % 256})")
                elif cmd in ("RETR", "STOR") and data_conn is not None:
                    if cmd == "RETR" and arg not in self.files:
                        say("550 no such file")
                        await w.drain()
                        continue
                    say("150 opening data connection")
                    await w.drain()
                    dr, dw = await asyncio.wait_for(data_conn, 10)
                    if cmd == "RETR":
                        data = self.files[arg]
                        broken = self.break_after is not None
                        dw.write(data[:self.break_after] if broken else data)
                        await dw.drain()
                        dw.close()
                        say("426 connection closed; transfer aborted" if broken else "226 done")
                    else:
                        got = bytearray()
                        while chunk := await dr.read(65536):
                            got += chunk
                            if self.break_after is not None and len(got) >= self.break_after:
                                break
                        dw.close()
                        if self.break_after is not None:
                            say("426 connection closed; transfer aborted")
                        else:
                            self.uploads[arg] = bytes(got)
                            say("226 stored")
                    if data_server is not None:
                        data_server.close()
                    data_conn = data_server = None
                elif cmd == "QUIT":
                    say("221 bye")
                    await w.drain()
                    return
                else:
                    say("502 not implemented")
                await w.drain()
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            if data_server is not None:
                data_server.close()
            w.close()
