# ZVT transports: move APDUs over serial (framed, ACK/NAK, retries) or TCP (bare APDUs).
"""Transports only move APDUs; they know nothing of payments.

Both translate every OSError and pyserial error into the ZvtError hierarchy, and
both report silence as ``ZvtTimeoutError`` so a dead terminal never hangs a caller.
"""

from __future__ import annotations

import collections
import logging
import select
import socket
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType

import serial  # type: ignore[import-untyped, unused-ignore]

from .errors import ZvtConnectionError, ZvtProtocolError, ZvtTimeoutError
from .framing import (
    ACK,
    NAK,
    ControlReceived,
    DecoderEvent,
    FrameReceived,
    FrameRejected,
    Garbage,
    SerialDecoder,
    TcpDecoder,
    encode_frame,
)
from .redact import redact_apdu, redact_frame

log = logging.getLogger("drivers.zvt")

DEFAULT_TCP_PORT = 20007
BAUDRATES = (9600, 19200, 38400, 57600, 115200)


@dataclass(frozen=True, slots=True)
class ZvtTimeouts:
    """Spec time-outs in seconds (PA00P016 3.4, 5.2.5, 5.2.6); tests use short ones."""

    t1: float = 0.2  # gap between two bytes of one serial frame
    t2: float = 5.0  # frame sent -> ACK/NAK
    t3: float = 5.0  # command sent -> 80 00 / 84 xx
    t4: float = 180.0  # 80 00 -> completion, restarted by 04 FF and 04 0F

    def __post_init__(self) -> None:
        limits = {"t1": 5.0, "t2": 60.0, "t3": 600.0, "t4": 3600.0}
        for name, upper in limits.items():
            value = getattr(self, name)
            if not 0 < value <= upper:
                raise ValueError(f"ZVT time-out {name}={value!r} must be in (0, {upper}] seconds")


class ZvtTransport(ABC):
    """Moves whole APDUs; ``receive_apdu`` waits at most the time given."""

    def __init__(self, timeouts: ZvtTimeouts) -> None:
        self.timeouts = timeouts

    @property
    @abstractmethod
    def is_open(self) -> bool: ...

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def send_apdu(self, apdu: bytes) -> None:
        """Deliver one APDU; raises once the link has given up on it."""

    @abstractmethod
    def receive_apdu(self, timeout: float) -> bytes:
        """Next complete APDU from the terminal; ZvtTimeoutError after ``timeout``."""

    @abstractmethod
    def discard_input(self) -> None:
        """Drop stale bytes from an abandoned exchange before a new command."""

    def ensure_open(self) -> None:
        if not self.is_open:
            self.open()

    def __enter__(self) -> ZvtTransport:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SerialTransport(ZvtTransport):
    """RS232 (or a pty): DLE STX frames, CRC, ACK/NAK, a frame repeated at most twice."""

    def __init__(
        self,
        port: str,
        baudrate: int = 9600,
        timeouts: ZvtTimeouts | None = None,
        max_attempts: int = 3,
    ) -> None:
        super().__init__(timeouts or ZvtTimeouts())
        if baudrate not in BAUDRATES:
            raise ValueError(f"baud rate {baudrate} not one of {BAUDRATES}")
        if not 1 <= max_attempts <= 10:
            raise ValueError("max_attempts must be 1..10")
        self.port = port
        self.baudrate = baudrate
        self.max_attempts = max_attempts
        self._serial: serial.SerialBase | None = None
        self._decoder = SerialDecoder()
        self._apdus: collections.deque[bytes] = collections.deque()
        self._controls: collections.deque[int] = collections.deque()
        self._last_rx: bytes | None = None
        self._last_byte = 0.0
        # Short polls let T1 be noticed mid-frame without a timer thread.
        self._poll = min(0.05, self.timeouts.t1 / 4)

    @property
    def is_open(self) -> bool:
        return self._serial is not None and self._serial.is_open

    def open(self) -> None:
        self.close()
        try:
            ser = serial.serial_for_url(self.port, do_not_open=True)
            ser.baudrate = self.baudrate
            ser.bytesize = serial.EIGHTBITS
            ser.parity = serial.PARITY_NONE
            ser.stopbits = serial.STOPBITS_TWO
            ser.xonxoff = False
            ser.rtscts = False
            ser.dsrdtr = False
            ser.timeout = self._poll
            ser.write_timeout = self.timeouts.t2
            ser.open()
        except (serial.SerialException, OSError, ValueError) as err:
            raise ZvtConnectionError(f"cannot open serial port {self.port}: {err}") from err
        self._serial = ser
        self._reset_state()
        log.info("zvt: serial %s open at %d baud 8N2", self.port, self.baudrate)

    def close(self) -> None:
        ser, self._serial = self._serial, None
        if ser is not None:
            try:
                ser.close()
            except (serial.SerialException, OSError):
                log.debug("zvt: error closing %s", self.port, exc_info=True)
        self._reset_state()

    def _reset_state(self) -> None:
        self._decoder.reset()
        self._apdus.clear()
        self._controls.clear()
        self._last_rx = None

    def _port(self) -> serial.SerialBase:
        if self._serial is None:
            raise ZvtConnectionError(f"serial port {self.port} is not open")
        return self._serial

    def _write(self, data: bytes) -> None:
        try:
            self._port().write(data)
        except (serial.SerialException, OSError) as err:
            raise ZvtConnectionError(f"write to {self.port} failed: {err}") from err

    def _pump(self) -> None:
        """Read what is there (waiting one poll at most) and act on the decoder's events."""
        ser = self._port()
        try:
            data = ser.read(ser.in_waiting or 1)
        except (serial.SerialException, OSError) as err:
            raise ZvtConnectionError(f"read from {self.port} failed: {err}") from err
        now = time.monotonic()
        events: list[DecoderEvent]
        if data:
            self._last_byte = now
            events = self._decoder.feed(data)
        elif self._decoder.in_frame and now - self._last_byte > self.timeouts.t1:
            events = self._decoder.expire()
        else:
            return
        for event in events:
            self._handle(event)

    def _handle(self, event: DecoderEvent) -> None:
        if isinstance(event, FrameReceived):
            self._write(bytes([ACK]))
            if event.apdu == self._last_rx:
                # Every terminal message waits for our answer, so the same frame again
                # before we sent anything is a repeat after a lost ACK, not news.
                log.debug("zvt: dropped repeated frame")
                return
            self._last_rx = event.apdu
            log.debug("zvt: <- %s", redact_apdu(event.apdu))
            self._apdus.append(event.apdu)
        elif isinstance(event, FrameRejected):
            self._write(bytes([NAK]))
            log.warning("zvt: NAK for %s: %s", event.reason, redact_frame(event.raw))
        elif isinstance(event, ControlReceived):
            self._controls.append(event.byte)
        elif isinstance(event, Garbage):
            log.debug("zvt: ignored %d stray bytes", len(event.data))

    def send_apdu(self, apdu: bytes) -> None:
        frame = encode_frame(apdu)
        self._controls.clear()
        self._last_rx = None
        naks = 0
        for attempt in range(1, self.max_attempts + 1):
            log.debug("zvt: -> %s (attempt %d)", redact_apdu(apdu), attempt)
            self._write(frame)
            queued = len(self._apdus)
            deadline = time.monotonic() + self.timeouts.t2
            answer = None
            while answer is None and time.monotonic() < deadline:
                if self._controls:
                    answer = self._controls.popleft()
                elif len(self._apdus) > queued:
                    # The terminal already answers, so it has our frame; the ACK got lost.
                    # Sending the frame again could start the command twice.
                    answer = ACK
                else:
                    self._pump()
            if answer == ACK:
                return
            if answer == NAK:
                naks += 1
                log.warning("zvt: terminal sent NAK (attempt %d)", attempt)
            else:
                log.warning("zvt: no ACK within T2 (attempt %d)", attempt)
        if naks:
            raise ZvtProtocolError(
                f"terminal refused the frame {self.max_attempts} times ({naks} NAK)"
            )
        raise ZvtTimeoutError(f"terminal did not acknowledge the frame {self.max_attempts} times")

    def receive_apdu(self, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while not self._apdus:
            if time.monotonic() >= deadline:
                raise ZvtTimeoutError(f"no message from the terminal within {timeout:.1f} s")
            self._pump()
        return self._apdus.popleft()

    def discard_input(self) -> None:
        ser = self._port()
        try:
            ser.reset_input_buffer()
        except (serial.SerialException, OSError) as err:
            raise ZvtConnectionError(f"flush of {self.port} failed: {err}") from err
        self._reset_state()


class TcpTransport(ZvtTransport):
    """TCP/IP: bare APDUs, no ACK/NAK; the ECR opens and closes the connection."""

    def __init__(
        self,
        host: str,
        port: int = DEFAULT_TCP_PORT,
        timeouts: ZvtTimeouts | None = None,
        connect_timeout: float = 5.0,
    ) -> None:
        super().__init__(timeouts or ZvtTimeouts())
        if not 0 < port < 65536:
            raise ValueError(f"bad TCP port {port}")
        if not 0 < connect_timeout <= 60:
            raise ValueError("connect_timeout must be in (0, 60] seconds")
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self._sock: socket.socket | None = None
        self._decoder = TcpDecoder()
        self._apdus: collections.deque[bytes] = collections.deque()

    @property
    def is_open(self) -> bool:
        return self._sock is not None

    def open(self) -> None:
        self.close()
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as err:
            raise ZvtConnectionError(
                f"cannot connect to terminal at {self.host}:{self.port}: {err}"
            ) from err
        self._sock = sock
        log.info("zvt: connected to %s:%d", self.host, self.port)

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                log.debug("zvt: error closing socket", exc_info=True)
        self._decoder.reset()
        self._apdus.clear()

    def _socket(self) -> socket.socket:
        if self._sock is None:
            raise ZvtConnectionError("not connected to the terminal")
        return self._sock

    def ensure_open(self) -> None:
        if self._sock is not None:
            try:
                self.discard_input()
            except ZvtConnectionError:
                log.info("zvt: terminal closed the idle connection; reconnecting")
        if self._sock is None:
            self.open()

    def send_apdu(self, apdu: bytes) -> None:
        sock = self._socket()
        log.debug("zvt: -> %s", redact_apdu(apdu))
        try:
            sock.settimeout(self.timeouts.t2)
            sock.sendall(apdu)
        except TimeoutError as err:
            self.close()
            raise ZvtTimeoutError("terminal did not take the data within T2") from err
        except OSError as err:
            self.close()
            raise ZvtConnectionError(f"send to terminal failed: {err}") from err

    def receive_apdu(self, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while not self._apdus:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ZvtTimeoutError(f"no message from the terminal within {timeout:.1f} s")
            sock = self._socket()
            try:
                sock.settimeout(remaining)
                data = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError as err:
                self.close()
                raise ZvtConnectionError(f"receive from terminal failed: {err}") from err
            if not data:
                self.close()
                raise ZvtConnectionError("the terminal closed the connection")
            for apdu in self._decoder.feed(data):
                log.debug("zvt: <- %s", redact_apdu(apdu))
                self._apdus.append(apdu)
        return self._apdus.popleft()

    def discard_input(self) -> None:
        """Drain without waiting; a closed peer shows up here as ZvtConnectionError."""
        sock = self._socket()
        self._decoder.reset()
        self._apdus.clear()
        try:
            while select.select([sock], [], [], 0)[0]:
                if not sock.recv(4096):
                    self.close()
                    raise ZvtConnectionError("the terminal closed the connection")
        except OSError as err:
            self.close()
            raise ZvtConnectionError(f"receive from terminal failed: {err}") from err
