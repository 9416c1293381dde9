# The simulated serial scanner, checked from the host side with plain pty reads.
from __future__ import annotations

import errno
import os
import select
import subprocess
import sys
import termios
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

HW_SIM = Path(__file__).resolve().parents[2] / "hw-sim"
try:
    from hwsim.scanner import SimulatedSerialScanner
except ModuleNotFoundError:  # hw-sim/ is not installed: use the source tree
    sys.path.insert(0, str(HW_SIM))
    from hwsim.scanner import SimulatedSerialScanner


def read_exactly(fd: int, size: int, timeout: float = 5.0) -> bytes:
    data = b""
    while len(data) < size:
        ready, _, _ = select.select([fd], [], [], timeout)
        assert ready, f"only {data!r} arrived"
        chunk = os.read(fd, size - len(data))
        assert chunk, "end of file"
        data += chunk
    return data


@pytest.fixture
def host(tmp_path: Path) -> Iterator[tuple[SimulatedSerialScanner, int]]:
    with SimulatedSerialScanner(tmp_path / "scanner") as sim:
        fd = os.open(sim.port, os.O_RDWR | os.O_NOCTTY)
        try:
            yield sim, fd
        finally:
            os.close(fd)


def test_the_link_points_at_the_pty(tmp_path: Path) -> None:
    with SimulatedSerialScanner(tmp_path / "dev" / "scanner") as sim:
        assert sim.port == str(tmp_path / "dev" / "scanner")
        assert os.path.realpath(sim.port) == sim.slave_path
        assert sim.slave_path.startswith("/dev/pts/")


def test_a_scan_is_the_code_and_the_suffix_byte_for_byte(
    host: tuple[SimulatedSerialScanner, int],
) -> None:
    sim, fd = host
    sim.scan("4006381333931")
    assert read_exactly(fd, 14) == b"4006381333931\r"


@pytest.mark.parametrize("suffix", [b"\n", b"\r\n", b"\t"])
def test_other_suffixes(tmp_path: Path, suffix: bytes) -> None:
    with SimulatedSerialScanner(tmp_path / "scanner", suffix=suffix) as sim:
        fd = os.open(sim.port, os.O_RDWR | os.O_NOCTTY)
        try:
            sim.scan("12")
            assert read_exactly(fd, 2 + len(suffix)) == b"12" + suffix
        finally:
            os.close(fd)


def test_fault_helpers_put_their_bytes_on_the_wire(
    host: tuple[SimulatedSerialScanner, int],
) -> None:
    sim, fd = host
    sim.send_raw(b"\x00\xff")
    sim.send_partial("77")
    sim.send_overlong(70)
    sim.send_garbage(b"\x1b")
    assert read_exactly(fd, 2 + 2 + 71 + 2) == b"\x00\xff77" + b"9" * 70 + b"\r\x1b\r"


def test_unplug_breaks_the_host_side_and_removes_the_link(
    host: tuple[SimulatedSerialScanner, int],
) -> None:
    sim, fd = host
    sim.unplug()
    assert not os.path.lexists(sim.port)
    assert not sim.plugged
    try:
        assert os.read(fd, 1) == b""
    except OSError as err:
        assert err.errno == errno.EIO
    with pytest.raises(RuntimeError, match="unplugged"):
        sim.scan("1")


def test_replug_brings_a_new_pty_up_behind_the_same_link(
    host: tuple[SimulatedSerialScanner, int],
) -> None:
    sim, _old_fd = host
    link = sim.port
    sim.unplug()
    sim.replug()
    assert os.path.realpath(link) == sim.slave_path
    fd = os.open(link, os.O_RDWR | os.O_NOCTTY)
    try:
        sim.scan("back")
        assert read_exactly(fd, 5) == b"back\r"
    finally:
        os.close(fd)


def test_a_host_that_never_reads_makes_scan_time_out(tmp_path: Path) -> None:
    with (
        SimulatedSerialScanner(tmp_path / "scanner", write_timeout=0.2) as sim,
        pytest.raises(TimeoutError),
    ):
        sim.send_raw(b"9" * 1_000_000)


def test_the_pty_is_raw_so_cr_stays_cr(host: tuple[SimulatedSerialScanner, int]) -> None:
    _sim, fd = host
    attrs = termios.tcgetattr(fd)
    assert not attrs[tty.LFLAG] & (termios.ICANON | termios.ECHO)
    assert not attrs[tty.IFLAG] & termios.ICRNL


def test_command_line_scans_stdin_lines(tmp_path: Path) -> None:
    link = tmp_path / "x" / "scanner"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hwsim.scanner", "--link", str(link), "--suffix", "CRLF"],
        cwd=HW_SIM,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        banner = proc.stdout.readline()
        assert banner.startswith("listening on /dev/pts/")
        assert str(link) in banner
        fd = os.open(link, os.O_RDWR | os.O_NOCTTY)
        try:
            proc.stdin.write("0013748911\n:raw 00ff\n")
            proc.stdin.flush()
            assert read_exactly(fd, 14) == b"0013748911\r\n\x00\xff"
        finally:
            os.close(fd)
        proc.stdin.write(":quit\n")
        proc.stdin.flush()
        assert proc.wait(timeout=10) == 0
        assert not os.path.lexists(link)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
