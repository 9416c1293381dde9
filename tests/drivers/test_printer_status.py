# purpose: unit and property tests of the DLE EOT status codec (drivers/printer/status.py).
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.printer.status import (
    PrinterHealth,
    is_status_byte,
    needs_error_cause,
    parse_health,
    pick_status_byte,
    status_request,
)

IDLE = 0x12  # fixed bits only: bit 1 and bit 4 set


def test_requests_are_dle_eot_n() -> None:
    assert [status_request(n) for n in (1, 2, 3, 4)] == [
        b"\x10\x04\x01",
        b"\x10\x04\x02",
        b"\x10\x04\x03",
        b"\x10\x04\x04",
    ]
    for bad in (0, 5, 255, -1):
        with pytest.raises(ValueError):
            status_request(bad)


def test_fixed_bits_decide_what_is_a_status_byte() -> None:
    assert is_status_byte(0x12)
    assert is_status_byte(0x7E)  # paper end + near end
    assert not is_status_byte(0x00)
    assert not is_status_byte(0x13)  # bit 0 set
    assert not is_status_byte(0x92)  # bit 7 set
    assert not is_status_byte(0x02)  # bit 4 clear
    assert not is_status_byte(256)
    assert not is_status_byte(-1)


def test_pick_takes_the_last_plausible_byte() -> None:
    assert pick_status_byte(b"") is None
    assert pick_status_byte(b"\x00\xff") is None
    assert pick_status_byte(b"\x12\x00") == 0x12
    assert pick_status_byte(b"\x12\x16") == 0x16


def test_healthy_printer() -> None:
    health = parse_health(IDLE, IDLE, None, IDLE)
    assert health == PrinterHealth(online=True, drawer_open=False)
    assert health.can_print
    assert health.problems() == ()


def test_no_answer_is_offline() -> None:
    health = parse_health(None, IDLE, IDLE, IDLE)
    assert not health.online and not health.responding
    assert not health.can_print
    assert health.problems() == ("offline",)


def test_garbage_answer_to_printer_status_counts_as_no_answer() -> None:
    assert parse_health(0xFF) == PrinterHealth.silent()


def test_cover_open() -> None:
    health = parse_health(IDLE | 0x08, IDLE | 0x04, None, IDLE)
    assert not health.online and health.responding
    assert health.cover_open and not health.paper_out
    assert health.problems() == ("cover_open",)


def test_paper_out_from_either_sensor_byte() -> None:
    assert parse_health(IDLE | 0x08, IDLE | 0x20, None, IDLE).paper_out
    from_roll_sensor = parse_health(IDLE | 0x08, IDLE, None, IDLE | 0x60)
    assert from_roll_sensor.paper_out
    assert from_roll_sensor.problems()[0] == "paper_out"


def test_paper_near_end_prints_on() -> None:
    health = parse_health(IDLE, IDLE, None, IDLE | 0x0C)
    assert health.paper_low and health.can_print
    assert health.problems() == ("paper_low",)
    assert parse_health(IDLE, IDLE, None, IDLE | 0x04).paper_low  # one of the two bits


def test_error_causes() -> None:
    assert needs_error_cause(IDLE | 0x40)
    assert not needs_error_cause(IDLE)
    assert not needs_error_cause(None)
    cutter = parse_health(IDLE | 0x08, IDLE | 0x40, IDLE | 0x08, IDLE)
    assert cutter.error and cutter.cutter_error and not cutter.can_print
    assert cutter.problems() == ("cutter_error",)
    fatal = parse_health(IDLE | 0x08, IDLE | 0x40, IDLE | 0x20, IDLE)
    assert fatal.unrecoverable_error
    hot = parse_health(IDLE | 0x08, IDLE | 0x40, IDLE | 0x40, IDLE)
    assert hot.auto_recoverable_error


def test_drawer_sensor_and_polarity() -> None:
    assert parse_health(IDLE | 0x04).drawer_open is True
    assert parse_health(IDLE).drawer_open is False
    assert parse_health(IDLE | 0x04, drawer_open_high=False).drawer_open is False
    assert parse_health(IDLE, drawer_open_high=False).drawer_open is True


def test_feed_button_held_is_offline_but_not_a_fault() -> None:
    health = parse_health(IDLE | 0x08, IDLE | 0x08, None, IDLE)
    assert health.feed_button and not health.online and health.responding
    assert health.problems() == ("offline",)


def test_unreported_health_is_printable() -> None:
    health = PrinterHealth.unreported()
    assert health.can_print and not health.reported and health.problems() == ()


answers = st.one_of(st.none(), st.integers(min_value=-300, max_value=600))


@settings(max_examples=500, deadline=None)
@given(answers, answers, answers, answers, st.booleans())
def test_any_answers_decode_without_raising(
    p1: int | None, p2: int | None, p3: int | None, p4: int | None, high: bool
) -> None:
    health = parse_health(p1, p2, p3, p4, drawer_open_high=high)
    assert isinstance(health, PrinterHealth)
    if p1 is None or not is_status_byte(p1):
        assert not health.responding and not health.online
    else:
        assert health.responding
        assert health.online == (not p1 & 0x08)
        assert health.drawer_open == (bool(p1 & 0x04) == high)
    health.problems()
    needs_error_cause(p2)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_any_read_picks_a_valid_byte_or_none(data: bytes) -> None:
    value = pick_status_byte(data)
    assert value is None or (is_status_byte(value) and value in data)
