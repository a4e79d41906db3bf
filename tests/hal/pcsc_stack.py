"""A private PC/SC stack for tests: pcscd with the vsmartcard ``vpcd`` reader driver, and virtual cards.

* :func:`ensure_installed` checks for ``pcscd`` and the vpcd driver (Debian packages ``pcscd`` and
  ``vsmartcard-vpcd``) and installs them with apt-get when run as root; else it says why not.
* :class:`PcscDaemon` runs ``pcscd --foreground`` on a private socket: the socket is made here and
  handed over the systemd way (``LISTEN_FDS``/``LISTEN_PID``, fd 3), because pcsc-lite 1.9 pcscd
  has its socket path compiled in. Clients find it through ``PCSCLITE_CSOCK_NAME``, which
  libpcsclite reads once per process, so set it before the first PC/SC call. Its reader.conf.d
  holds one vpcd reader ("Virtual PCD 00 00" and "... 00 01") listening on a free TCP port;
  ``start(with_reader=False)`` runs it without readers.
* :class:`VirtualCard` is a contactless card on that reader: while "on the reader" it keeps a TCP
  connection to vpcd and answers vpcd's messages (2-byte big-endian length, then 1 control byte:
  0 power off, 1 power on, 2 reset, 4 ATR wanted; or a command APDU). It answers GET DATA UID
  (``FF CA 00 00 00``) with its UID and ``90 00``, like a PC/SC part 3 contactless reader.

Run as a script (``python -m tests.hal.pcsc_stack``) it installs the packages and checks the stack.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path

VPCD_DRIVER = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"
APT_PACKAGES = ("pcscd", "vsmartcard-vpcd")
GET_DATA_UID = bytes.fromhex("FFCA000000")


def pcscd_path() -> str | None:
    return shutil.which("pcscd") or next((p for p in ("/usr/sbin/pcscd", "/sbin/pcscd") if os.path.exists(p)), None)


@contextlib.contextmanager
def _install_lock():  # noqa: ANN202
    """One installer at a time across test processes (pytest-xdist workers): apt and dpkg take their
    own lock and fail, rather than wait, when another apt-get runs."""
    with open(os.path.join(tempfile.gettempdir(), "ocpp-station-tests-install.lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_installed() -> str | None:
    """None when pcscd and vpcd are installed (installing them if possible), else the reason why not."""
    if pcscd_path() and os.path.exists(VPCD_DRIVER):
        return None
    with _install_lock():
        return _install_pcscd()


def _install_pcscd() -> str | None:
    if pcscd_path() and os.path.exists(VPCD_DRIVER):  # another worker installed it meanwhile
        return None
    want = " ".join(APT_PACKAGES)
    if not shutil.which("apt-get") or os.geteuid() != 0:
        return f"needs pcscd and the vpcd driver: apt-get install {want} (no apt-get or not root here)"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *APT_PACKAGES]
    for attempt in range(2):
        try:
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            return f"apt-get install {want} took too long"
        if r.returncode == 0 and pcscd_path() and os.path.exists(VPCD_DRIVER):
            return None
        if attempt == 0:
            subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600)
    return f"apt-get install {want} failed: {(r.stderr or r.stdout).strip()[-300:]}"


def ensure_pyscard() -> str | None:
    """None when pyscard imports (building it if possible: it needs the PC/SC headers and swig),
    else the reason why not. CI runs as root on a fresh machine, so the real stack is tested there."""
    import importlib

    try:
        importlib.import_module("smartcard.scard")
        return None
    except ImportError:
        pass
    if not shutil.which("apt-get") or os.geteuid() != 0:
        return "pyscard is not installed: apt-get install libpcsclite-dev swig; pip install pyscard"
    with _install_lock():
        return _install_pyscard()


def _install_pyscard() -> str | None:
    import importlib
    import sys

    importlib.invalidate_caches()
    try:
        importlib.import_module("smartcard.scard")  # another worker built it meanwhile
        return None
    except ImportError:
        pass
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", "libpcsclite-dev", "swig", "gcc"]
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600)
            subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "pyscard"], capture_output=True, text=True,
                           timeout=600)
    except subprocess.TimeoutExpired:
        return "installing pyscard took too long"
    if r.returncode != 0:
        return f"pip install pyscard failed: {(r.stderr or r.stdout).strip()[-300:]}"
    importlib.invalidate_caches()
    try:
        importlib.import_module("smartcard.scard")
    except ImportError as e:
        return f"pyscard installed but does not import: {e}"
    return None


def _free_port_pair() -> int:
    """A TCP port p with p and p + 1 free (vpcd opens one port per slot)."""
    for _ in range(200):
        port = random.randrange(20000, 60000)
        try:
            for p in (port, port + 1):
                with socket.socket() as s:
                    s.bind(("0.0.0.0", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no free TCP port pair for vpcd")


def contactless_atr(standard: int, card_name: int = 0x0001) -> bytes:
    """A PC/SC part 3 ATR of a storage card: RID A0 00 00 03 06, standard byte, card name."""
    hist = bytes([0x80, 0x4F, 0x0C]) + bytes.fromhex("A000000306") + bytes([standard]) + card_name.to_bytes(2, "big")
    hist += bytes(4)
    body = bytes([0x80 | len(hist), 0x80, 0x01]) + hist  # T0 (TD1, K), TD1 (TD2, T=0), TD2 (T=1)
    tck = 0
    for b in body:
        tck ^= b
    return b"\x3b" + body + bytes([tck])


class PcscDaemon:
    """pcscd on a private socket with one vpcd reader; start/stop as often as needed."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.sock_path = str(workdir / "pcscd.comm")
        self.conf_dir = workdir / "reader.conf.d"
        self.log_path = workdir / "pcscd.log"
        self.port = _free_port_pair()
        self.pid: int | None = None
        self._starts = 0
        self._listener: socket.socket | None = None

    def env(self) -> dict[str, str]:
        return {"PCSCLITE_CSOCK_NAME": self.sock_path}

    def start(self, with_reader: bool = True, timeout: float = 10.0) -> None:
        exe = pcscd_path()
        if exe is None:
            raise RuntimeError("pcscd is not installed")
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        conf = self.conf_dir / "vpcd"
        if with_reader:
            conf.write_text(
                f'FRIENDLYNAME "Virtual PCD"\nDEVICENAME /dev/null:{self.port}\nLIBPATH {VPCD_DRIVER}\n'
                f"CHANNELID {self.port}\n"
            )
        elif conf.exists():
            conf.unlink()
        if os.path.exists(self.sock_path):
            os.unlink(self.sock_path)
        self._starts += 1
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.sock_path)
        os.chmod(self.sock_path, 0o777)
        listener.listen(32)
        self._listener = listener
        fd = listener.fileno()
        if fd == 3:  # posix_spawn's dup2(3, 3) would keep close-on-exec
            fd = os.dup(fd)
        try:
            self.pid = os.posix_spawn(
                "/bin/sh",
                ["sh", "-c", f'LISTEN_PID=$$ LISTEN_FDS=1 exec "{exe}" --foreground --info -c "{self.conf_dir}"'],
                dict(os.environ),
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 1, str(self.log_path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
                    (os.POSIX_SPAWN_DUP2, 1, 2),
                    (os.POSIX_SPAWN_DUP2, fd, 3),
                ],
            )
        finally:
            if fd != listener.fileno():
                os.close(fd)
        end = time.monotonic() + timeout
        while not self._ready():
            if self._exited() or time.monotonic() > end:
                self.stop()
                raise RuntimeError(f"pcscd did not come up: {self.log_tail()}")
            time.sleep(0.05)

    def _ready(self) -> bool:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text.count("daemon ready") >= self._starts

    def _exited(self) -> bool:
        if self.pid is None:
            return True
        pid, _ = os.waitpid(self.pid, os.WNOHANG)
        if pid:
            self.pid = None
        return pid != 0

    def log_tail(self, n: int = 15) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> None:
        """pcscd ends and its socket is gone: clients see the service unavailable."""
        if self.pid is not None:
            try:
                os.kill(self.pid, 15)
            except ProcessLookupError:
                pass
            end = time.monotonic() + 5
            while not self._exited() and time.monotonic() < end:
                time.sleep(0.02)
            if self.pid is not None:
                os.kill(self.pid, 9)
                os.waitpid(self.pid, 0)
                self.pid = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if os.path.exists(self.sock_path):
            os.unlink(self.sock_path)


class VirtualCard:
    """A card held at the vpcd reader on ``port`` until :meth:`remove`; it reconnects if vpcd restarts."""

    def __init__(self, port: int, uid: bytes, atr: bytes) -> None:
        self.port, self.uid, self.atr = port, uid, atr
        self.apdus: list[bytes] = []
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, name="virtual-card", daemon=True)
        self._thread.start()

    def uid_reads(self) -> int:
        return sum(1 for a in list(self.apdus) if a == GET_DATA_UID)

    def remove(self) -> None:
        self._stop.set()
        s = self._sock
        if s is not None:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(3)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=0.5)
            except OSError:
                time.sleep(0.05)
                continue
            self._sock = s
            self.connected.set()
            try:
                self._serve(s)
            except OSError:
                pass
            finally:
                self.connected.clear()
                self._sock = None
                s.close()
            time.sleep(0.05)

    def _recv(self, s: socket.socket, n: int) -> bytes | None:
        buf = b""
        while len(buf) < n:
            if self._stop.is_set():
                return None
            try:
                chunk = s.recv(n - len(buf))
            except TimeoutError:
                continue
            if not chunk:
                return None
            buf += chunk
        return buf

    def _serve(self, s: socket.socket) -> None:
        s.settimeout(0.1)
        while True:
            head = self._recv(s, 2)
            if head is None:
                return
            (n,) = struct.unpack(">H", head)
            msg = self._recv(s, n)
            if msg is None:
                return
            if n == 1 and msg[0] in (0, 1, 2):  # power off / on, reset: no answer
                continue
            if n == 1 and msg[0] == 4:
                out = self.atr
            else:
                self.apdus.append(msg)
                out = self.uid + b"\x90\x00" if msg == GET_DATA_UID else b"\x6d\x00"
            s.sendall(struct.pack(">H", len(out)) + out)


if __name__ == "__main__":
    import tempfile

    why = ensure_installed()
    if why:
        raise SystemExit(why)
    with tempfile.TemporaryDirectory() as d:
        daemon = PcscDaemon(Path(d))
        daemon.start()
        print(f"pcscd pid {daemon.pid}, socket {daemon.sock_path}, vpcd port {daemon.port}")
        print(daemon.log_tail())
        daemon.stop()
