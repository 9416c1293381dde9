# ZVT simulator checked with raw bytes typed from the spec, without the driver in the loop.
from __future__ import annotations

import binascii
import os
import select
import signal
import socket
import subprocess
import sys
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import hwsim
import pytest
from hwsim.zvt import ZvtSimulator


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def crc(data: bytes) -> int:
    """CRC-16/KERMIT via the stdlib's XMODEM with every byte and the result mirrored."""

    def mirror(value: int, bits: int) -> int:
        return int(f"{value:0{bits}b}"[::-1], 2)

    return mirror(binascii.crc_hqx(bytes(mirror(b, 8) for b in data), 0), 16)


def framed(apdu: bytes) -> bytes:
    check = crc(apdu + b"\x03")
    return (
        b"\x10\x02"
        + apdu.replace(b"\x10", b"\x10\x10")
        + b"\x10\x03"
        + bytes([check & 0xFF, check >> 8])
    )


class RawTcp:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=2)
        self.buf = b""

    def send(self, text: str) -> None:
        self.sock.sendall(h(text))

    def recv(self) -> bytes:
        while True:
            if len(self.buf) >= 3 and len(self.buf) >= 3 + self.buf[2]:
                size = 3 + self.buf[2]
                apdu, self.buf = self.buf[:size], self.buf[size:]
                return apdu
            chunk = self.sock.recv(4096)
            assert chunk, "simulator closed the connection"
            self.buf += chunk


class RawSerial:
    def __init__(self, device: str) -> None:
        self.fd = os.open(device, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        self.buf = b""

    def close(self) -> None:
        os.close(self.fd)

    def read_some(self, timeout: float = 2.0) -> None:
        ready = select.select([self.fd], [], [], timeout)[0]
        assert ready, "simulator sent nothing"
        self.buf += os.read(self.fd, 4096)

    def byte(self) -> int:
        while not self.buf:
            self.read_some()
        first, self.buf = self.buf[0], self.buf[1:]
        return first

    def frame(self) -> bytes:
        """One frame, checked with the stdlib CRC; the body with DLEs undoubled."""
        while b"\x10\x03" not in self.buf.replace(b"\x10\x10", b"") or len(self.buf) < 6:
            self.read_some()
        assert self.buf[:2] == b"\x10\x02"
        body = bytearray()
        i = 2
        while True:
            if self.buf[i] == 0x10 and self.buf[i + 1] == 0x10:
                body.append(0x10)
                i += 2
            elif self.buf[i] == 0x10 and self.buf[i + 1] == 0x03:
                break
            else:
                body.append(self.buf[i])
                i += 1
        while len(self.buf) < i + 4:
            self.read_some()
        check = self.buf[i + 2] | (self.buf[i + 3] << 8)
        self.buf = self.buf[i + 4 :]
        assert check == crc(bytes(body) + b"\x03")
        return bytes(body)

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)


@pytest.fixture
def tcp_sim() -> Iterator[ZvtSimulator]:
    with ZvtSimulator("tcp", step_delay=0.002, response_timeout=1.0) as sim:
        yield sim


@pytest.fixture
def pty_sim() -> Iterator[ZvtSimulator]:
    with ZvtSimulator("pty", step_delay=0.002, response_timeout=1.0, t2=0.5) as sim:
        yield sim


def test_registration_and_sale_over_raw_tcp(tcp_sim: ZvtSimulator) -> None:
    ecr = RawTcp(tcp_sim.port)
    ecr.send("06 00 06 00 00 00 BE 09 78")
    assert ecr.recv() == h("80 00 00")
    assert ecr.recv() == h("06 0F 0A 19 00 29 52 50 00 01 49 09 78")
    ecr.send("80 00 00")

    ecr.send("06 01 07 04 00 00 00 00 01 00")  # 1.00, no currency code
    assert ecr.recv() == h("80 00 00")
    seen = []
    while True:
        apdu = ecr.recv()
        seen.append(apdu)
        ecr.send("80 00 00")
        if apdu[:2] == h("06 0F"):
            break
    kinds = [a[:2].hex(" ") for a in seen]
    assert kinds[:5] == ["04 ff"] * 5
    assert kinds[5] == "04 0f"
    assert set(kinds[6:-1]) == {"06 d1"} and kinds[-1] == "06 0f"
    status = seen[5]
    assert h("27 00 04 00 00 00 00 01 00") in status
    assert b"\x49" not in status[status.index(b"\x8b") :]  # no currency: we sent none
    pan = status[status.index(b"\x22\xf0") + 3 :][: status[status.index(b"\x22\xf0") + 2] & 0x0F]
    assert "e" in pan.hex()  # only masked digits ever leave the simulator
    lines = seen[6:-1]
    assert all(line[3] == 0x00 for line in lines[:-1])
    assert lines[-1][3] & 0x80 and lines[-1][3] != 0x80  # last-line attribute
    assert [(b.kind, b.amount, b.receipt) for b in tcp_sim.batch] == [("sale", 100, 1)]


def test_unconfirmed_result_is_not_booked(tcp_sim: ZvtSimulator) -> None:
    ecr = RawTcp(tcp_sim.port)
    ecr.send("06 01 07 04 00 00 00 00 05 00")
    assert ecr.recv() == h("80 00 00")
    status = ecr.recv()  # unregistered: no intermediate statuses, straight to the result
    assert status[:2] == h("04 0F")
    ecr.send("84 66 00")  # the ECR refuses the result
    time.sleep(0.1)
    assert tcp_sim.batch == []
    assert any("auto-reversal" in e for e in tcp_sim.events)


def test_unknown_command_and_read_card_are_refused(tcp_sim: ZvtSimulator) -> None:
    ecr = RawTcp(tcp_sim.port)
    ecr.send("06 C0 00")
    assert ecr.recv() == h("84 83 00")
    assert tcp_sim.card_data_requested
    ecr.send("0F 77 00")
    assert ecr.recv() == h("84 83 00")


def test_serial_framing_ack_and_nak(pty_sim: ZvtSimulator) -> None:
    assert pty_sim.device is not None
    ecr = RawSerial(pty_sim.device)
    try:
        bad = bytearray(framed(h("05 01 00")))
        bad[-1] ^= 0xFF
        ecr.write(bytes(bad))
        assert ecr.byte() == 0x15  # NAK for the bad CRC
        ecr.write(framed(h("05 01 00")))
        assert ecr.byte() == 0x06
        assert ecr.frame() == h("80 00 00")
        ecr.write(b"\x06")
        assert ecr.frame() == h("06 0F 0B F0 F0 F7") + b"SIM-1.0" + h("00")
        ecr.write(b"\x06" + framed(h("80 00 00")))
        assert ecr.byte() == 0x06
        assert [r[:2] for r in pty_sim.received] == [h("05 01")]
    finally:
        ecr.close()


def test_simulator_repeats_an_unacknowledged_frame(pty_sim: ZvtSimulator) -> None:
    assert pty_sim.device is not None
    ecr = RawSerial(pty_sim.device)
    try:
        ecr.write(framed(h("06 B0 00")))
        assert ecr.byte() == 0x06
        first = ecr.frame()
        ecr.write(b"\x15")  # NAK: the terminal must send the same frame again
        assert ecr.frame() == first == h("80 00 00")
        ecr.write(b"\x06")
    finally:
        ecr.close()


def test_command_line_prints_where_it_listens() -> None:
    env = dict(os.environ, PYTHONPATH=str(Path(hwsim.__file__).resolve().parent.parent))
    proc = subprocess.Popen(
        [sys.executable, "-m", "hwsim.zvt", "--tcp", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("ZVT simulator listening on tcp 127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        ecr = RawTcp(port)
        ecr.send("05 01 00")
        assert ecr.recv() == h("80 00 00")
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
