"""The few libsrt calls streamer needs, through ctypes (no maintained binding exists on PyPI).

Debian ships the library as `libsrt1.5-openssl` (soname libsrt.so.1.5) and, beside FFmpeg,
as `libsrt1.5-gnutls` (libsrt-gnutls.so.1.5); either works. Every call here releases the
GIL (ctypes does for a CDLL), so a blocking one may run in a worker thread while the event
loop goes on. Values are from srt.h of SRT 1.5.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PACKAGE = "libsrt1.5-openssl"
_SONAMES = ("libsrt.so.1.5", "libsrt-openssl.so.1.5", "libsrt-gnutls.so.1.5")

# Socket options (SRT_SOCKOPT).
SNDSYN = 1
RCVSYN = 2
SNDTIMEO = 13
RCVTIMEO = 14
LATENCY = 23
PASSPHRASE = 26
PBKEYLEN = 27
CONNTIMEO = 36
STREAMID = 46
TRANSTYPE = 50
PEERIDLETIMEO = 56
TRANSTYPE_LIVE = 0

# Errors (SRT_ERRNO) and reject reasons (SRT_REJECT_REASON, SRT_REJX_*).
ERROR = -1
ENOSERVER = 1001
EASYNCSND = 6001
EASYNCRCV = 6002
ETIMEOUT = 6003
REJ_SYSTEM = 1
REJ_PEER = 2
REJ_BADSECRET = 10
REJ_UNSECURE = 11
REJ_TIMEOUT = 16
REJX_PREDEFINED = 1000  # from here on the listener's own code (access control)
REJX_FORBIDDEN = 1403

_LOG_CRIT = 2  # syslog level

# Socket states (SRT_SOCKSTATUS).
STATE_CONNECTED = 5
STATE_BROKEN = 6


class SrtUnavailableError(RuntimeError):
    """libsrt is not installed: the message names the Debian package."""


class SrtError(Exception):
    """A failed libsrt call; `code` is the SRT_ERRNO, `reject` the reject reason if any."""

    def __init__(self, message: str, code: int, reject: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.reject = reject


class Stats(ctypes.Structure):
    """struct CBytePerfMon (srt.h); only some fields are read, all must be there."""

    _fields_ = [
        ("msTimeStamp", ctypes.c_int64),
        ("pktSentTotal", ctypes.c_int64),
        ("pktRecvTotal", ctypes.c_int64),
        ("pktSndLossTotal", ctypes.c_int),
        ("pktRcvLossTotal", ctypes.c_int),
        ("pktRetransTotal", ctypes.c_int),
        ("pktSentACKTotal", ctypes.c_int),
        ("pktRecvACKTotal", ctypes.c_int),
        ("pktSentNAKTotal", ctypes.c_int),
        ("pktRecvNAKTotal", ctypes.c_int),
        ("usSndDurationTotal", ctypes.c_int64),
        ("pktSndDropTotal", ctypes.c_int),
        ("pktRcvDropTotal", ctypes.c_int),
        ("pktRcvUndecryptTotal", ctypes.c_int),
        ("byteSentTotal", ctypes.c_uint64),
        ("byteRecvTotal", ctypes.c_uint64),
        ("byteRcvLossTotal", ctypes.c_uint64),
        ("byteRetransTotal", ctypes.c_uint64),
        ("byteSndDropTotal", ctypes.c_uint64),
        ("byteRcvDropTotal", ctypes.c_uint64),
        ("byteRcvUndecryptTotal", ctypes.c_uint64),
        ("pktSent", ctypes.c_int64),
        ("pktRecv", ctypes.c_int64),
        ("pktSndLoss", ctypes.c_int),
        ("pktRcvLoss", ctypes.c_int),
        ("pktRetrans", ctypes.c_int),
        ("pktRcvRetrans", ctypes.c_int),
        ("pktSentACK", ctypes.c_int),
        ("pktRecvACK", ctypes.c_int),
        ("pktSentNAK", ctypes.c_int),
        ("pktRecvNAK", ctypes.c_int),
        ("mbpsSendRate", ctypes.c_double),
        ("mbpsRecvRate", ctypes.c_double),
        ("usSndDuration", ctypes.c_int64),
        ("pktReorderDistance", ctypes.c_int),
        ("pktRcvAvgBelatedTime", ctypes.c_double),
        ("pktRcvBelated", ctypes.c_int64),
        ("pktSndDrop", ctypes.c_int),
        ("pktRcvDrop", ctypes.c_int),
        ("pktRcvUndecrypt", ctypes.c_int),
        ("byteSent", ctypes.c_uint64),
        ("byteRecv", ctypes.c_uint64),
        ("byteRcvLoss", ctypes.c_uint64),
        ("byteRetrans", ctypes.c_uint64),
        ("byteSndDrop", ctypes.c_uint64),
        ("byteRcvDrop", ctypes.c_uint64),
        ("byteRcvUndecrypt", ctypes.c_uint64),
        ("usPktSndPeriod", ctypes.c_double),
        ("pktFlowWindow", ctypes.c_int),
        ("pktCongestionWindow", ctypes.c_int),
        ("pktFlightSize", ctypes.c_int),
        ("msRTT", ctypes.c_double),
        ("mbpsBandwidth", ctypes.c_double),
        ("byteAvailSndBuf", ctypes.c_int),
        ("byteAvailRcvBuf", ctypes.c_int),
        ("mbpsMaxBW", ctypes.c_double),
        ("byteMSS", ctypes.c_int),
        ("pktSndBuf", ctypes.c_int),
        ("byteSndBuf", ctypes.c_int),
        ("msSndBuf", ctypes.c_int),
        ("msSndTsbPdDelay", ctypes.c_int),
        ("pktRcvBuf", ctypes.c_int),
        ("byteRcvBuf", ctypes.c_int),
        ("msRcvBuf", ctypes.c_int),
        ("msRcvTsbPdDelay", ctypes.c_int),
        ("pktSndFilterExtraTotal", ctypes.c_int),
        ("pktRcvFilterExtraTotal", ctypes.c_int),
        ("pktRcvFilterSupplyTotal", ctypes.c_int),
        ("pktRcvFilterLossTotal", ctypes.c_int),
        ("pktSndFilterExtra", ctypes.c_int),
        ("pktRcvFilterExtra", ctypes.c_int),
        ("pktRcvFilterSupply", ctypes.c_int),
        ("pktRcvFilterLoss", ctypes.c_int),
        ("pktReorderTolerance", ctypes.c_int),
        ("pktSentUniqueTotal", ctypes.c_int64),
        ("pktRecvUniqueTotal", ctypes.c_int64),
        ("byteSentUniqueTotal", ctypes.c_uint64),
        ("byteRecvUniqueTotal", ctypes.c_uint64),
        ("pktSentUnique", ctypes.c_int64),
        ("pktRecvUnique", ctypes.c_int64),
        ("byteSentUnique", ctypes.c_uint64),
        ("byteRecvUnique", ctypes.c_uint64),
    ]


@dataclass(frozen=True)
class LinkStats:
    """A sender's view of the link (totals since connect, instant values)."""

    rtt_seconds: float
    packets_sent: int
    packets_retransmitted: int
    packets_dropped: int  # too late to send: past the latency window
    packets_lost: int  # reported lost by the receiver
    send_buffer_bytes: int
    send_buffer_seconds: float


# int (*)(void* opaque, SRTSOCKET ns, int hsversion, const struct sockaddr*, const char* sid)
_LISTEN_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p
)

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None


def _find() -> ctypes.CDLL:
    errors = []
    names = [*_SONAMES, ctypes.util.find_library("srt")]
    for name in names:
        if not name:
            continue
        try:
            return ctypes.CDLL(name)
        except OSError as exc:
            errors.append(str(exc))
    raise SrtUnavailableError(
        f"SRT needs libsrt: install the Debian package {PACKAGE} ({'; '.join(errors[:1])})"
    )


def _declare(lib: ctypes.CDLL) -> None:
    i32, c_int, vp = ctypes.c_int32, ctypes.c_int, ctypes.c_void_p
    signatures: dict[str, tuple[Any, list[Any]]] = {
        "srt_startup": (c_int, []),
        "srt_create_socket": (i32, []),
        "srt_setsockflag": (c_int, [i32, c_int, vp, c_int]),
        "srt_getsockflag": (c_int, [i32, c_int, vp, ctypes.POINTER(c_int)]),
        "srt_connect": (c_int, [i32, vp, c_int]),
        "srt_bind": (c_int, [i32, vp, c_int]),
        "srt_listen": (c_int, [i32, c_int]),
        "srt_listen_callback": (c_int, [i32, _LISTEN_CALLBACK, vp]),
        "srt_accept": (i32, [i32, vp, vp]),
        "srt_getsockname": (c_int, [i32, vp, ctypes.POINTER(c_int)]),
        "srt_sendmsg2": (c_int, [i32, ctypes.c_char_p, c_int, vp]),
        "srt_recvmsg": (c_int, [i32, ctypes.c_char_p, c_int]),
        "srt_bstats": (c_int, [i32, ctypes.POINTER(Stats), c_int]),
        "srt_getrejectreason": (c_int, [i32]),
        "srt_setrejectreason": (c_int, [i32, c_int]),
        "srt_rejectreason_str": (ctypes.c_char_p, [c_int]),
        "srt_getlasterror": (c_int, [vp]),
        "srt_getlasterror_str": (ctypes.c_char_p, []),
        "srt_getsockstate": (c_int, [i32]),
        "srt_close": (c_int, [i32]),
        "srt_setloglevel": (None, [c_int]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype = restype
        function.argtypes = argtypes


def library() -> ctypes.CDLL:
    """libsrt, loaded and started once; SrtUnavailableError names the package to install."""
    global _lib  # noqa: PLW0603 - one process-wide library handle
    with _lock:
        if _lib is None:
            lib = _find()
            _declare(lib)
            if lib.srt_startup() < 0:
                raise SrtUnavailableError("libsrt failed to start")
            # Rejections and losses are measured and reported here, not printed to stderr.
            lib.srt_setloglevel(_LOG_CRIT)
            _lib = lib
        return _lib


def _last_error(what: str, sock: int | None = None) -> SrtError:
    lib = library()
    code = int(lib.srt_getlasterror(None))
    text = (lib.srt_getlasterror_str() or b"").decode(errors="replace")
    reject = int(lib.srt_getrejectreason(sock)) if sock is not None else 0
    return SrtError(f"{what}: {text}", code, reject)


def reject_text(reason: int) -> str:
    """libsrt's words for a reject reason below 1000; the number for a listener's own code."""
    if reason >= REJX_PREDEFINED:
        return f"code {reason}"
    return (library().srt_rejectreason_str(reason) or b"").decode(errors="replace")


def _sockaddr(host: str, port: int) -> tuple[bytes, int]:
    """A sockaddr for host:port as bytes (first address getaddrinfo gives); blocking."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    if family == socket.AF_INET:
        packed = socket.inet_pton(socket.AF_INET, str(address[0]))
        raw = socket.AF_INET.to_bytes(2, "little") + port.to_bytes(2, "big") + packed + bytes(8)
    else:
        packed = socket.inet_pton(socket.AF_INET6, str(address[0]))
        raw = (
            socket.AF_INET6.to_bytes(2, "little")
            + port.to_bytes(2, "big")
            + bytes(4)
            + packed
            + int(address[-1]).to_bytes(4, "little")  # scope id
        )
    return raw, int(family)


class Socket:
    """One SRT socket. Methods raise SrtError; close() is idempotent and thread-safe."""

    def __init__(self) -> None:
        self._lib = library()
        self._handle: int = self._lib.srt_create_socket()
        if self._handle == ERROR:
            raise _last_error("cannot create an SRT socket")
        self._closed = False
        self._close_lock = threading.Lock()

    @classmethod
    def _adopt(cls, handle: int) -> Socket:
        sock = cls.__new__(cls)
        sock._lib = library()
        sock._handle = handle
        sock._closed = False
        sock._close_lock = threading.Lock()
        return sock

    @property
    def handle(self) -> int:
        return self._handle

    def set_int(self, option: int, value: int) -> None:
        raw = ctypes.c_int(value)
        if self._lib.srt_setsockflag(self._handle, option, ctypes.byref(raw), 4) == ERROR:
            raise _last_error(f"cannot set option {option}")

    def set_bool(self, option: int, value: bool) -> None:
        raw = ctypes.c_bool(value)
        if self._lib.srt_setsockflag(self._handle, option, ctypes.byref(raw), 1) == ERROR:
            raise _last_error(f"cannot set option {option}")

    def set_text(self, option: int, value: str) -> None:
        raw = value.encode()
        buffer = ctypes.create_string_buffer(raw, len(raw))
        if self._lib.srt_setsockflag(self._handle, option, buffer, len(raw)) == ERROR:
            raise _last_error(f"cannot set option {option}")

    def get_text(self, option: int) -> str:
        buffer = ctypes.create_string_buffer(1024)
        size = ctypes.c_int(len(buffer))
        if self._lib.srt_getsockflag(self._handle, option, buffer, ctypes.byref(size)) == ERROR:
            raise _last_error(f"cannot read option {option}")
        return buffer.raw[: size.value].decode(errors="replace")

    def connect(self, host: str, port: int) -> None:
        """Blocks until connected, rejected or timed out (SRTO_CONNTIMEO): run it in a
        thread."""
        raw, _ = _sockaddr(host, port)
        if self._lib.srt_connect(self._handle, raw, len(raw)) == ERROR:
            raise _last_error("connect", self._handle)

    def bind(self, host: str, port: int) -> int:
        """Binds, returns the port bound (useful with port 0)."""
        raw, _ = _sockaddr(host, port)
        if self._lib.srt_bind(self._handle, raw, len(raw)) == ERROR:
            raise _last_error("bind")
        name = ctypes.create_string_buffer(128)
        size = ctypes.c_int(len(name))
        self._lib.srt_getsockname(self._handle, name, ctypes.byref(size))
        return int.from_bytes(name.raw[2:4], "big")

    def listen(
        self, backlog: int = 8, accept_streamid: Callable[[Socket, str], int] | None = None
    ) -> None:
        """Listens; `accept_streamid(socket, streamid)` may return a reject code (1000+)
        or 0 to accept. The callback runs on libsrt's receiver thread."""
        if accept_streamid is not None:

            def hook(
                _opaque: int | None, handle: int, _version: int, _peer: int | None, sid: bytes
            ) -> int:
                try:
                    code = accept_streamid(Socket._adopt(handle), (sid or b"").decode())
                except Exception:
                    code = REJX_FORBIDDEN
                if code:
                    self._lib.srt_setrejectreason(handle, code)
                    return -1
                return 0

            self._hook = _LISTEN_CALLBACK(hook)  # kept alive as long as the socket
            self._lib.srt_listen_callback(self._handle, self._hook, None)
        if self._lib.srt_listen(self._handle, backlog) == ERROR:
            raise _last_error("listen")

    def accept(self) -> Socket:
        """Blocks until a caller connects (or the socket is closed)."""
        handle = self._lib.srt_accept(self._handle, None, None)
        if handle == ERROR:
            raise _last_error("accept")
        return Socket._adopt(handle)

    def send(self, message: bytes) -> int:
        """One live-mode message (at most 1316 bytes here). Returns the bytes queued;
        raises SrtError (code EASYNCSND: the send buffer is full, try again)."""
        sent = self._lib.srt_sendmsg2(self._handle, message, len(message), None)
        if sent == ERROR:
            raise _last_error("send", self._handle)
        return int(sent)

    def receive(self, size: int = 1500) -> bytes:
        """One message; b"" when the peer closed."""
        buffer = ctypes.create_string_buffer(size)
        received = self._lib.srt_recvmsg(self._handle, buffer, size)
        if received == ERROR:
            error = _last_error("receive")
            if error.code in (EASYNCRCV, ETIMEOUT):
                raise error
            return b""
        return buffer.raw[:received]

    def state(self) -> int:
        return int(self._lib.srt_getsockstate(self._handle))

    def stats(self) -> LinkStats:
        raw = Stats()
        if self._lib.srt_bstats(self._handle, ctypes.byref(raw), 0) == ERROR:
            raise _last_error("stats")
        return LinkStats(
            rtt_seconds=raw.msRTT / 1000,
            packets_sent=raw.pktSentTotal,
            packets_retransmitted=raw.pktRetransTotal,
            packets_dropped=raw.pktSndDropTotal,
            packets_lost=raw.pktSndLossTotal,
            send_buffer_bytes=raw.byteSndBuf,
            send_buffer_seconds=raw.msSndBuf / 1000,
        )

    def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._lib.srt_close(self._handle)
