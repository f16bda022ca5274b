"""Just enough RESP3 for one long-lived connection that receives invalidations.

Redis pushes tracking invalidations on the tracked connection itself when it
speaks RESP3 (a listener on the ``__redis__:invalidate`` channel of a RESP3
client hears nothing). redis-py keeps such pushes inside its own parsers, so
the feed speaks the protocol itself: ``HELLO 3``, ``CLIENT TRACKING``, ``PING``,
and reading replies and pushes.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import ssl
import struct
import threading
from typing import Any

__all__ = ["Push", "RespConnection", "RespError"]


class RespError(Exception):
    """An error reply, or bytes that are not RESP3."""


class Push(list[Any]):
    """An out-of-band message (``>``): ``[b"invalidate", [keys] or None]``."""


class RespConnection:
    """A blocking RESP3 connection over TCP or a unix socket."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = bytearray()
        self._interval = 1.0
        self.tls = isinstance(sock, ssl.SSLSocket)
        self._wake_r = self._wake_w = -1  # TLS: lets other threads wake ``wait``
        self._wake_lock = threading.Lock()

    @classmethod
    def open(
        cls,
        *,
        host: str | None,
        port: int | None,
        path: str | None,
        timeout: float,
        tls: ssl.SSLContext | None = None,
    ) -> RespConnection:
        if path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(path)
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_connection((host or "localhost", port or 6379), timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls is not None:
                try:
                    sock = tls.wrap_socket(sock, server_hostname=host or "localhost")
                except BaseException:
                    sock.close()
                    raise
        return cls(sock)

    def listen(self, interval: float) -> None:
        """Switch to listening: ``wait`` blocks in the kernel for up to ``interval``.

        A Python socket timeout makes each read two system calls, each giving
        up the GIL (a poll, then the read); under a thread that keeps the GIL
        busy, every hand-off costs up to the switch interval (5 ms). A blocking
        socket with the kernel's own timeouts makes a wake-up one read: one
        hand-off per invalidation instead of two. (Not under TLS, whose reads
        need the Python timeout: they keep the poll.)
        """
        self._interval = interval
        if self.tls:
            self._wake_r, self._wake_w = os.pipe()
            os.set_blocking(self._wake_r, False)
            return
        self._sock.settimeout(None)
        usec = struct.pack("ll", int(interval), int(interval % 1 * 1e6))
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, usec)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, usec)

    def wait(self) -> bool:
        """Return True once a frame can be read (after ``listen``: within its
        interval), False if nothing came."""
        if self._buf:
            return True
        # Under TLS, what was decrypted already is not the socket's to tell.
        if self.tls and not self._sock.pending():  # type: ignore[attr-defined]
            fd = self._sock.fileno()
            ready, _, _ = select.select([fd, self._wake_r], [], [], self._interval)
            if self._wake_r in ready:
                with contextlib.suppress(OSError):
                    os.read(self._wake_r, 4096)
            if fd not in ready:
                return False
        try:
            self._fill()
        except (BlockingIOError, TimeoutError):
            return False
        return True

    def send(self, *args: str | bytes) -> None:
        out = bytearray(b"*%d\r\n" % len(args))
        for arg in args:
            raw = arg.encode("utf-8") if isinstance(arg, str) else arg
            out += b"$%d\r\n%s\r\n" % (len(raw), raw)
        self._sock.sendall(out)

    def call(self, *args: str | bytes) -> Any:
        """Send a command and return its reply (only for the handshake: a push that
        comes first is dropped, and the tier starts empty after it anyway)."""
        self.send(*args)
        while isinstance(reply := self.read(), Push):
            pass
        if isinstance(reply, RespError):
            raise reply
        return reply

    def read(self) -> Any:
        """Return the next reply or push (blocking up to the socket's timeout)."""
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b"("):
            return rest.decode() if kind == b"+" else int(rest)
        if kind == b"-" or kind == b"!":
            return RespError((self._exact(int(rest)) if kind == b"!" else rest).decode())
        if kind == b":":
            return int(rest)
        if kind in (b"$", b"="):
            size = int(rest)
            return None if size < 0 else self._exact(size)
        if kind == b"_":
            return None
        if kind == b"#":
            return rest == b"t"
        if kind == b",":
            return float(rest)
        if kind in (b"*", b"~", b">"):
            size = int(rest)
            if size < 0:
                return None
            items = [self.read() for _ in range(size)]
            return Push(items) if kind == b">" else items
        if kind == b"%":
            return {self.read(): self.read() for _ in range(int(rest))}
        if kind == b"|":  # attributes: skip them, return what they annotate
            for _ in range(2 * int(rest)):
                self.read()
            return self.read()
        raise RespError(f"not RESP3: {bytes(line[:20])!r}")

    def _line(self) -> bytes:
        while (end := self._buf.find(b"\r\n")) < 0:
            self._fill()
        line = bytes(self._buf[:end])
        del self._buf[: end + 2]
        return line

    def _exact(self, size: int) -> bytes:
        while len(self._buf) < size + 2:
            self._fill()
        data = bytes(self._buf[:size])
        del self._buf[: size + 2]
        return data

    def _fill(self) -> None:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self._buf += chunk

    def wake(self) -> None:
        """Make the listening thread's ``wait`` return (TLS only: other threads
        must not touch the session, so they ask that thread to act)."""
        with self._wake_lock, contextlib.suppress(OSError):
            if self._wake_w >= 0:  # not closed (its number may belong to another file)
                os.write(self._wake_w, b"!")

    def close(self) -> None:
        """Close the socket, waking a thread blocked reading it."""
        with self._wake_lock:
            for fd in (self._wake_r, self._wake_w):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._wake_r = self._wake_w = -1
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self._sock.close()
        except OSError:
            pass
