"""station/transfer.py against real HTTP(S) and FTP servers on 127.0.0.1 (tests/transfer_servers.py),
on virtual time; and firmware package checks (station/firmware.py)."""

from __future__ import annotations

import asyncio

import pytest

from station.firmware import PackageError, make_package, verify_package
from station.transfer import TransferError, client_context, download, parse_location, upload
from tests.tls import make_pki, server_context
from tests.transfer_servers import FtpFileServer, HttpFileServer

pytestmark = pytest.mark.virtual_time

DATA = bytes(range(256)) * 1000  # 256 kB


async def test_http_download_and_errors():
    srv = await HttpFileServer(files={"/fw.bin": DATA}).start()
    try:
        assert await download(srv.url("/fw.bin")) == DATA
        with pytest.raises(TransferError, match="HTTP 404"):
            await download(srv.url("/missing"))
        with pytest.raises(TransferError, match="larger than"):
            await download(srv.url("/fw.bin"), max_bytes=1000)
        srv.break_after = 5000
        with pytest.raises(TransferError, match="closed after 5000"):
            await download(srv.url("/fw.bin"))
        srv.break_after, srv.refuse = None, True
        with pytest.raises(TransferError):
            await download(srv.url("/fw.bin"))
    finally:
        await srv.close()


async def test_download_from_a_closed_port_and_a_silent_server_fail_in_time():
    srv = await HttpFileServer().start()
    url = srv.url("/x")
    await srv.close()
    with pytest.raises(TransferError):
        await download(url)

    async def silent(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3600)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    t0 = asyncio.get_running_loop().time()
    with pytest.raises(TransferError, match="timed out after 30 s"):
        await download(f"http://127.0.0.1:{port}/x", timeout=30)
    assert asyncio.get_running_loop().time() - t0 == pytest.approx(30, abs=1)
    server.close()


async def test_https_download_checks_the_server_certificate(tmp_path):
    pki = make_pki(tmp_path / "pki")
    srv = await HttpFileServer(files={"/fw.bin": DATA}, ssl=server_context(pki)).start()
    try:
        url = f"https://localhost:{srv.port}/fw.bin"
        assert await download(url, ssl_context=client_context(str(pki.ca_file))) == DATA
        with pytest.raises(TransferError, match="SSL|CERTIFICATE"):
            await download(url, ssl_context=client_context(None))  # not signed by a system CA
    finally:
        await srv.close()


async def test_http_upload_put_then_post_fallback():
    srv = await HttpFileServer().start()
    try:
        await upload(srv.url("/diag/"), "d.tar.gz", b"abc")
        assert srv.uploads == {"/diag/d.tar.gz": b"abc"}
        srv.no_put = True
        await upload(srv.url("/diag"), "e.tar.gz", b"\r\n--x\r\nbinary")
        assert srv.uploads["/diag/e.tar.gz"] == b"\r\n--x\r\nbinary"
        assert ("POST", "/diag") in srv.requests
        srv.status = 500
        with pytest.raises(TransferError, match="HTTP 500"):
            await upload(srv.url("/diag"), "f", b"x")
    finally:
        await srv.close()


async def test_ftp_download_upload_and_failures():
    srv = await FtpFileServer(files={"/pub/fw.bin": DATA}, user="cs", password="pw").start()
    try:
        assert await download(srv.url("/pub/fw.bin", "cs", "pw")) == DATA
        await upload(srv.url("/in", "cs", "pw"), "diag.tar.gz", DATA)
        assert srv.uploads == {"/in/diag.tar.gz": DATA}
        assert any(c.startswith("EPSV") for c in srv.commands)
        with pytest.raises(TransferError, match="530"):
            await download(srv.url("/pub/fw.bin", "cs", "wrong"))
        with pytest.raises(TransferError, match="550"):
            await download(srv.url("/pub/none", "cs", "pw"))
        srv.break_after = 1000
        with pytest.raises(TransferError, match="426"):
            await download(srv.url("/pub/fw.bin", "cs", "pw"))
        with pytest.raises(TransferError):
            await upload(srv.url("/in", "cs", "pw"), "again.tar.gz", DATA)
        assert "/in/again.tar.gz" not in srv.uploads
        srv.break_after, srv.refuse = None, True
        with pytest.raises(TransferError, match="refused"):
            await download(srv.url("/pub/fw.bin", "cs", "pw"))
    finally:
        await srv.close()


def test_locations():
    loc = parse_location("ftp://u%40x:p%3Aw@127.0.0.1:2121/a%20b/")
    assert (loc.user, loc.password, loc.path, loc.port) == ("u@x", "p:w", "/a b/", 2121)
    assert "p:w" not in loc.shown() and "u@x" not in loc.shown()
    assert parse_location("https://h/x").port == 443
    for bad in ("file:///etc/passwd", "sftp://h/x", "http:///nohost", "http://h:99999/"):
        with pytest.raises(TransferError):
            parse_location(bad)


def test_firmware_package():
    assert verify_package(make_package("2.0.0", b"image")) == "2.0.0"
    good = make_package("2.0.0", b"image")
    for bad in (b"\x00garbage", b"[]", good.replace(b'"2.0.0"', b'""'), good.replace(b"station-firmware/1", b"other"),
                good[:-10] + b'"}', make_package("x" * 51)):
        with pytest.raises(PackageError):
            verify_package(bad)
    corrupt = make_package("2.0.0", b"image").replace(b"aW1hZ2U=", b"aW1hZ2F=")
    with pytest.raises(PackageError, match="sha256"):
        verify_package(corrupt)


async def raw_server(answer: bytes) -> tuple[asyncio.Server, int]:
    """A server that reads the request head and sends ``answer`` as it is, then closes."""

    async def client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.readuntil(b"\r\n\r\n")
        w.write(answer)
        await w.drain()
        w.close()

    server = await asyncio.start_server(client, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_http_chunked_to_the_end_and_redirect():
    chunked, p1 = await raw_server(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n")
    to_end, p2 = await raw_server(b"HTTP/1.0 200 OK\r\n\r\nuntil the end")
    moved, p3 = await raw_server(f"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{p1}/x\r\nContent-Length: 0\r\n\r\n".encode())
    loop, p4 = await raw_server(b"HTTP/1.1 301 Moved\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n")
    try:
        assert await download(f"http://127.0.0.1:{p1}/fw") == b"hello world"
        assert await download(f"http://127.0.0.1:{p2}/fw") == b"until the end"
        assert await download(f"http://127.0.0.1:{p3}/fw") == b"hello world"
        with pytest.raises(TransferError, match="redirects"):
            await download(f"http://127.0.0.1:{p4}/fw")
        with pytest.raises(TransferError, match="larger than"):
            await download(f"http://127.0.0.1:{p1}/fw", max_bytes=8)
    finally:
        for s in (chunked, to_end, moved, loop):
            s.close()


async def test_hostile_answers_end_in_a_transfer_error():
    for answer in (b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 200 OK\r\nX: " + b"a" * 100_000 + b"\r\n\r\n",
                   b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"):
        server, port = await raw_server(answer)
        with pytest.raises(TransferError):
            await download(f"http://127.0.0.1:{port}/fw")
        server.close()

    async def endless_ftp(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"220 " + b"x" * 100_000 + b"\r\n")
        await w.drain()
        w.close()

    server = await asyncio.start_server(endless_ftp, "127.0.0.1", 0)
    with pytest.raises(TransferError):
        await download(f"ftp://127.0.0.1:{server.sockets[0].getsockname()[1]}/fw")
    server.close()


async def test_https_server_that_keeps_the_connection_open_after_the_file(tmp_path):
    """The whole file came (Content-Length): the download succeeds without waiting for the server's close."""
    pki = make_pki(tmp_path / "pki")

    async def client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.readuntil(b"\r\n\r\n")
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfile")
        await w.drain()
        await asyncio.sleep(3600)

    server = await asyncio.start_server(client, "127.0.0.1", 0, ssl=server_context(pki))
    port = server.sockets[0].getsockname()[1]
    t0 = asyncio.get_running_loop().time()
    assert await download(f"https://localhost:{port}/fw", timeout=60, ssl_context=client_context(str(pki.ca_file))) == b"file"
    assert asyncio.get_running_loop().time() - t0 < 10
    server.close()
