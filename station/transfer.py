"""File transfer for firmware and diagnostics: download and upload over HTTP, HTTPS and FTP.

Minimal clients on asyncio streams (no threads, so they run on a virtual-time loop too), each with
a bounded size and one overall timeout:

- HTTP(S): ``GET`` (Content-Length, chunked or read to the end; up to 5 redirects); upload by
  ``PUT`` to ``location/fileName``, and by ``POST`` multipart/form-data to the location when the
  server does not allow PUT (405 / 501). HTTPS checks the server's certificate (the system's CAs
  and an optional extra CA file).
- FTP: passive mode (EPSV, then PASV), binary, ``RETR`` and ``STOR``; user and password from the
  URL (``ftp://user:pass@host/path``), anonymous otherwise.

Every failure is a ``TransferError`` with a message fit for a log line (never a password).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import ssl
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from urllib.parse import unquote, urljoin, urlsplit

MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
MAX_REDIRECTS = 5
CLOSE_WAIT_S = 5.0
SCHEMES = ("http", "https", "ftp")


class TransferError(Exception):
    """A download or upload did not complete (refused, broken, too big, timed out)."""


@dataclass(frozen=True)
class Location:
    scheme: str
    host: str
    port: int
    path: str  # unquoted, starts with "/"
    user: str | None
    password: str | None
    raw_path: str  # as in the URL (quoted), with the query

    def shown(self) -> str:
        """The URL without credentials, for log lines."""
        return f"{self.scheme}://{self.host}:{self.port}{self.raw_path}"


def parse_location(url: str) -> Location:
    """Split a transfer URL; raises TransferError for an unusable one."""
    try:
        u = urlsplit(url.strip())
        port = u.port
    except ValueError as e:
        raise TransferError(f"bad location URL: {e}") from None
    scheme = u.scheme.lower()
    if scheme not in SCHEMES:
        raise TransferError(f"unsupported location scheme {scheme or '(none)'!r} (http, https or ftp)")
    if not u.hostname:
        raise TransferError("location URL has no host")
    default = {"http": 80, "https": 443, "ftp": 21}[scheme]
    raw = (u.path or "/") + (f"?{u.query}" if u.query else "")
    return Location(scheme, u.hostname, port or default, unquote(u.path or "/"),
                    unquote(u.username) if u.username else None,
                    unquote(u.password) if u.password is not None else None, raw)


def client_context(ca_file: str | None = None) -> ssl.SSLContext:
    """TLS for HTTPS transfers: the system's CAs plus ``ca_file``; TLS 1.2 or later."""
    ctx = ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file:
        ctx.load_verify_locations(ca_file)
    return ctx


@contextlib.asynccontextmanager
async def _transferring(what: str, where: Callable[[], str], timeout: float) -> AsyncIterator[None]:
    """Bound a transfer by ``timeout`` and turn what can go wrong on the way into a TransferError
    naming ``what`` and ``where`` (read at the end: a download may have followed redirects)."""
    try:
        async with asyncio.timeout(timeout):
            yield
    except TimeoutError:
        raise TransferError(f"{what} {where()} timed out after {timeout:g} s") from None
    except (OSError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
            UnicodeError) as e:
        raise TransferError(f"{what} {where()}: {type(e).__name__}: {e}") from None


async def download(url: str, *, timeout: float = 300.0, max_bytes: int = MAX_DOWNLOAD_BYTES,
                   ssl_context: ssl.SSLContext | None = None) -> bytes:
    """The file at ``url``; raises TransferError."""
    loc = parse_location(url)
    async with _transferring("download from", lambda: loc.shown(), timeout):
        if loc.scheme == "ftp":
            return await _ftp_retr(loc, max_bytes)
        for _ in range(MAX_REDIRECTS + 1):
            status, headers, body = await _http(loc, "GET", None, {}, max_bytes, ssl_context)
            if status in (301, 302, 303, 307, 308) and "location" in headers:
                loc = parse_location(urljoin(loc.shown(), headers["location"]))
                if loc.scheme == "ftp":
                    return await _ftp_retr(loc, max_bytes)
                continue
            if status != 200:
                raise TransferError(f"GET {loc.shown()}: HTTP {status}")
            return body
        raise TransferError(f"GET {url}: more than {MAX_REDIRECTS} redirects")


async def upload(url: str, file_name: str, data: bytes, *, timeout: float = 300.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
    """Put ``data`` as ``file_name`` in the directory ``url``; raises TransferError."""
    loc = parse_location(url)
    if "/" in file_name or not file_name:
        raise TransferError(f"bad file name {file_name!r}")
    async with _transferring("upload to", loc.shown, timeout):
        if loc.scheme == "ftp":
            await _ftp_stor(loc, file_name, data)
            return
        target = _join(loc, file_name)
        status, _, _ = await _http(target, "PUT", data, {"Content-Type": "application/octet-stream"},
                                   MAX_HEADER_BYTES, ssl_context)
        if status in (405, 501):
            boundary = uuid.uuid4().hex
            body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n"
                    "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
            status, _, _ = await _http(loc, "POST", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"},
                                       MAX_HEADER_BYTES, ssl_context)
        if not 200 <= status < 300:
            raise TransferError(f"upload to {loc.shown()}: HTTP {status}")


def _join(loc: Location, file_name: str) -> Location:
    path, _, query = loc.raw_path.partition("?")
    path = path if path.endswith("/") else path + "/"
    raw = path + file_name + (f"?{query}" if query else "")
    return Location(loc.scheme, loc.host, loc.port, unquote(raw.partition("?")[0]), loc.user, loc.password, raw)


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close a connection; a peer that does not finish the close (TLS close_notify) is not waited for long:
    what was transferred stands."""
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), CLOSE_WAIT_S)


# -- HTTP ------------------------------------------------------------------------------------------
async def _http(loc: Location, method: str, body: bytes | None, extra: dict[str, str], max_bytes: int,
                ssl_context: ssl.SSLContext | None) -> tuple[int, dict[str, str], bytes]:
    ctx = None
    if loc.scheme == "https":
        ctx = ssl_context or client_context()
    reader, writer = await asyncio.open_connection(loc.host, loc.port, ssl=ctx,
                                                   server_hostname=loc.host if ctx else None)
    try:
        host = loc.host if ":" not in loc.host else f"[{loc.host}]"
        lines = [f"{method} {loc.raw_path} HTTP/1.1", f"Host: {host}:{loc.port}", "Connection: close",
                 "User-Agent: station-transfer", "Accept-Encoding: identity"]
        if loc.user is not None:
            token = base64.b64encode(f"{loc.user}:{loc.password or ''}".encode()).decode()
            lines.append(f"Authorization: Basic {token}")
        lines += [f"{k}: {v}" for k, v in extra.items()]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
        await writer.drain()
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise TransferError("HTTP header too long") from None
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        m = re.match(r"HTTP/1\.[01] (\d{3})", status_line)
        if not m:
            raise TransferError(f"not an HTTP answer: {status_line[:60]!r}")
        status = int(m.group(1))
        headers: dict[str, str] = {}
        for line in header_lines:
            if ":" in line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return status, headers, b""
        data = await _http_body(reader, headers, max_bytes)
        return status, headers, data
    finally:
        await _close(writer)


async def _http_body(reader: asyncio.StreamReader, headers: dict[str, str], max_bytes: int) -> bytes:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        out = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                return bytes(out)
            if len(out) + size > max_bytes:
                raise TransferError(f"file larger than {max_bytes} bytes")
            out += await reader.readexactly(size)
            await reader.readexactly(2)
    if "content-length" in headers:
        n = int(headers["content-length"])
        if n > max_bytes:
            raise TransferError(f"file of {n} bytes is larger than {max_bytes} bytes")
        try:
            return await reader.readexactly(n)
        except asyncio.IncompleteReadError as e:
            raise TransferError(f"connection closed after {len(e.partial)} of {n} bytes") from None
    return await _read_to_end(reader, max_bytes)


async def _read_to_end(reader: asyncio.StreamReader, max_bytes: int) -> bytes:
    out = bytearray()
    while chunk := await reader.read(65536):
        out += chunk
        if len(out) > max_bytes:
            raise TransferError(f"file larger than {max_bytes} bytes")
    return bytes(out)


# -- FTP -------------------------------------------------------------------------------------------
class _Ftp:
    def __init__(self, loc: Location) -> None:
        self.loc = loc
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter

    async def reply(self) -> tuple[int, str]:
        line = (await self.reader.readuntil(b"\n")).decode("utf-8", "replace").rstrip("\r\n")
        if len(line) < 3 or not line[:3].isdigit():
            raise TransferError(f"not an FTP reply: {line[:60]!r}")
        code, text = int(line[:3]), line[4:]
        if line[3:4] == "-":  # multi-line reply: up to "<code> "
            for _ in range(1000):
                more = (await self.reader.readuntil(b"\n")).decode("utf-8", "replace").rstrip("\r\n")
                if more.startswith(f"{code} "):
                    break
            else:
                raise TransferError("FTP reply too long")
        return code, text

    async def command(self, cmd: str, ok: tuple[int, ...]) -> tuple[int, str]:
        if "\r" in cmd or "\n" in cmd:
            raise TransferError("FTP path or name with a line break")
        self.writer.write(cmd.encode("utf-8") + b"\r\n")
        await self.writer.drain()
        code, text = await self.reply()
        if code not in ok:
            shown = "PASS ***" if cmd.startswith("PASS ") else cmd
            raise TransferError(f"FTP {self.loc.shown()}: {shown} -> {code} {text[:80]}")
        return code, text

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.loc.host, self.loc.port)
        code, text = await self.reply()
        if code != 220:
            raise TransferError(f"FTP {self.loc.shown()}: refused ({code} {text[:80]})")
        code, _ = await self.command(f"USER {self.loc.user or 'anonymous'}", (230, 331))
        if code == 331:
            await self.command(f"PASS {self.loc.password or 'station@'}", (230, 202))
        await self.command("TYPE I", (200,))

    async def data_channel(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        host, port = self.loc.host, 0
        try:
            _, text = await self.command("EPSV", (229,))
            m = re.search(r"\|\|\|(\d+)\|", text)
            if not m:
                raise TransferError("bad EPSV reply")
            port = int(m.group(1))
        except TransferError:
            _, text = await self.command("PASV", (227,))
            m = re.search(r"(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)", text)
            if not m:
                raise TransferError(f"bad PASV reply {text[:60]!r}") from None
            port = int(m.group(5)) * 256 + int(m.group(6))  # the control connection's host (no bounce)
        return await asyncio.open_connection(host, port)

    async def close(self) -> None:
        writer = getattr(self, "writer", None)
        if writer is not None:
            with contextlib.suppress(OSError):
                writer.write(b"QUIT\r\n")
            await _close(writer)


async def _ftp_retr(loc: Location, max_bytes: int) -> bytes:
    ftp = _Ftp(loc)
    try:
        await ftp.open()
        dr, dw = await ftp.data_channel()
        try:
            await ftp.command(f"RETR {loc.path}", (125, 150))
            data = await _read_to_end(dr, max_bytes)
        finally:
            dw.close()
        code, text = await ftp.reply()
        if code not in (226, 250):
            raise TransferError(f"FTP RETR {loc.path}: {code} {text[:80]} after {len(data)} bytes")
        return data
    finally:
        await ftp.close()


async def _ftp_stor(loc: Location, file_name: str, data: bytes) -> None:
    ftp = _Ftp(loc)
    path = loc.path if loc.path.endswith("/") else loc.path + "/"
    try:
        await ftp.open()
        dr, dw = await ftp.data_channel()
        try:
            await ftp.command(f"STOR {path}{file_name}", (125, 150))
            dw.write(data)
            await dw.drain()
        finally:
            await _close(dw)
        code, text = await ftp.reply()
        if code not in (226, 250):
            raise TransferError(f"FTP STOR {path}{file_name}: {code} {text[:80]}")
    finally:
        await ftp.close()
