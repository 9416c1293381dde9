# purpose: the simulated printer over real TCP and a real pty: status bytes, faults, drawer, CLI.
from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hwsim.escpos import EscPosPrinterSim, Kick
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

ESC, GS, DLE = b"\x1b", b"\x1d", b"\x10"
RECEIPT = ESC + b"@" + ESC + b"t\x13" + "Grüße 1,00 €\n".encode("cp858") + GS + b"V\x01"
KICK = ESC + b"p\x00\x32\x32"


def wait_until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def status(n: int) -> bytes:
    return DLE + b"\x04" + bytes([n])


@pytest.fixture
def sim() -> Iterator[EscPosPrinterSim]:
    with EscPosPrinterSim() as printer:
        yield printer


def tcp_client(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=2)
    sock.settimeout(1)
    return sock


def ask(sock: socket.socket, n: int) -> bytes:
    sock.sendall(status(n))
    try:
        return sock.recv(16)
    except TimeoutError:
        return b""


class Pty:
    """The host side of the simulator's pty, opened like a serial driver would."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def read(self, timeout: float = 0.5) -> bytes:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        return os.read(self.fd, 64) if ready else b""

    def ask(self, n: int, timeout: float = 0.5) -> bytes:
        self.write(status(n))
        return self.read(timeout)

    def close(self) -> None:
        os.close(self.fd)


def test_status_bytes_follow_the_spec(sim: EscPosPrinterSim) -> None:
    assert [sim.status_byte(n) for n in (1, 2, 3, 4)] == [0x12, 0x12, 0x12, 0x12]
    sim.set_paper_near_end()
    assert sim.status_byte(4) == 0x1E and sim.status_byte(1) == 0x12
    sim.set_paper_out()
    assert (sim.status_byte(1), sim.status_byte(2), sim.status_byte(4)) == (0x1A, 0x32, 0x7E)
    sim.clear_faults()
    sim.set_cover_open()
    assert (sim.status_byte(1), sim.status_byte(2)) == (0x1A, 0x16)
    sim.clear_faults()
    sim.set_fault("cutter_error")
    assert (sim.status_byte(2), sim.status_byte(3)) == (0x52, 0x1A)
    sim.clear_faults()
    sim.feed(KICK)
    assert sim.status_byte(1) == 0x16  # pin 3 high: drawer open


def test_tcp_prints_and_answers(sim: EscPosPrinterSim) -> None:
    port = sim.start_tcp()
    assert port > 0
    with tcp_client(port) as sock:
        assert ask(sock, 1) == b"\x12"
        sock.sendall(RECEIPT)
        (receipt,) = sim.wait_for_receipts(1)
    assert receipt.text == "Grüße 1,00 €"
    assert receipt.cut == "partial" and receipt.code_pages == {19}


def test_pty_prints_and_answers(sim: EscPosPrinterSim) -> None:
    path = sim.start_pty()
    assert os.path.exists(path)
    host = Pty(path)
    try:
        assert host.ask(4) == b"\x12"
        host.write(RECEIPT + b"\n\x0d\x03")  # raw mode: no CR/LF or ^C mangling either way
        (receipt,) = sim.wait_for_receipts(1)
        assert receipt.text == "Grüße 1,00 €"
        sim.set_paper_near_end()
        assert host.ask(4) == b"\x1e"
    finally:
        host.close()
    # The driver may close and reopen the port at will.
    host = Pty(path)
    try:
        assert host.ask(1) == b"\x12"
    finally:
        host.close()


def test_stopped_printer_holds_data_but_answers_status(sim: EscPosPrinterSim) -> None:
    port = sim.start_tcp()
    sim.set_cover_open()
    with tcp_client(port) as sock:
        sock.sendall(RECEIPT + KICK)
        assert ask(sock, 2) == b"\x16"
        time.sleep(0.1)
        assert sim.receipts == [] and not sim.drawer_open
        sim.set_cover_open(False)
        assert ask(sock, 1) == b"\x16"  # printed the held receipt and fired the held kick
    assert len(sim.wait_for_receipts(1)) == 1
    assert sim.drawer_kicks == [Kick(2, 100, 100)]


def test_offline_pty_stays_silent(sim: EscPosPrinterSim) -> None:
    host = Pty(sim.start_pty())
    try:
        sim.set_offline()
        assert host.ask(1, timeout=0.2) == b""
        host.write(RECEIPT)
        wait_until(lambda: sim.received_bytes == 3 + len(RECEIPT))
        sim.set_offline(False)
        assert host.ask(1) == b"\x12"
        time.sleep(0.05)
        assert sim.receipts == []  # what came while off is gone
    finally:
        host.close()


def test_offline_tcp_refuses_then_comes_back_on_the_same_port(sim: EscPosPrinterSim) -> None:
    port = sim.start_tcp()
    sock = tcp_client(port)
    sim.set_offline()
    with pytest.raises(OSError):
        sock.sendall(status(1))
        if not sock.recv(16):
            raise ConnectionResetError
    sock.close()
    with pytest.raises(ConnectionRefusedError):
        tcp_client(port)
    sim.set_offline(False)
    with tcp_client(port) as again:
        assert ask(again, 1) == b"\x12"


def test_drawer_opens_on_its_pin_only_and_jams(sim: EscPosPrinterSim) -> None:
    sim.feed(ESC + b"p\x01\x32\x32")  # pin 5: not our drawer
    assert not sim.drawer_open and len(sim.drawer_kicks) == 1
    sim.set_drawer_jammed()
    sim.feed(KICK)
    assert not sim.drawer_open
    sim.set_drawer_jammed(False)
    assert sim.feed(KICK + status(1)) == b"\x16"
    sim.close_drawer()
    assert sim.feed(status(1)) == b"\x12"


def test_drawer_closes_by_itself_after_n_seconds() -> None:
    now = [100.0]
    with EscPosPrinterSim(drawer_auto_close_s=3, clock=lambda: now[0]) as printer:
        printer.feed(KICK)
        now[0] += 2.9
        assert printer.drawer_open
        now[0] += 0.2
        assert not printer.drawer_open


def test_drawer_polarity_can_be_inverted() -> None:
    with EscPosPrinterSim(drawer_open_high=False) as printer:
        assert printer.status_byte(1) == 0x16
        printer.feed(KICK)
        assert printer.status_byte(1) == 0x12


def test_raster_images_are_saved_as_png(tmp_path: Path) -> None:
    rows = b"\xff\x00" * 4
    with EscPosPrinterSim(image_dir=tmp_path) as printer:
        printer.feed(GS + b"v0\x00\x02\x00\x04\x00" + rows + GS + b"V\x00")
        (receipt,) = printer.receipts
    (png,) = sorted(tmp_path.glob("*.png"))
    with Image.open(png) as img:
        assert img.size == (16, 4)
        assert img.convert("L").getpixel((0, 0)) == 0 and img.convert("L").getpixel((8, 0)) == 255
    assert receipt.cut == "full"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_at_the_device_never_escape(data: bytes) -> None:
    with EscPosPrinterSim() as printer:
        answers = printer.feed(data)
        answers += printer.feed(status(1))
    # Garbage may leave a command half-read (a real printer waits for its parameters too),
    # but whatever is answered is a status byte, one per request at most.
    assert all(b & 0x93 == 0x12 for b in answers)
    assert len(answers) <= (data + status(1)).count(DLE + b"\x04")


def test_cli_listens_and_echoes_receipts() -> None:
    env = dict(os.environ)
    hw_sim = str(Path(__file__).resolve().parents[2] / "hw-sim")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (hw_sim, env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "hwsim.escpos", "--tcp", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("escpos printer listening on tcp 127.0.0.1:")
        port = int(first.rsplit(":", 1)[1])
        with tcp_client(port) as sock:
            sock.sendall(RECEIPT + GS + b"kI\x06{B4711" + GS + b"V\x00")
            assert ask(sock, 1) == b"\x12"
        seen = [proc.stdout.readline() for _ in range(6)]
        assert "Grüße 1,00 €\n" in seen
    finally:
        proc.terminate()
        proc.wait(timeout=5)
    assert proc.returncode == 0
