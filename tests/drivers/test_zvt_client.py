# ZvtClient against the ZVT simulator over a real pseudo-terminal and a real TCP socket.
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from hwsim.zvt import ZvtSimulator

from drivers.zvt import (
    IntermediateStatus,
    Outcome,
    SerialTransport,
    TcpTransport,
    ZvtClient,
    ZvtConnectionError,
    ZvtProtocolError,
    ZvtTimeouts,
    ZvtTransport,
)

TIMEOUTS = ZvtTimeouts(t1=0.2, t2=0.5, t3=1.0, t4=1.0)


@dataclass
class Rig:
    sim: ZvtSimulator
    client: ZvtClient
    statuses: list[IntermediateStatus] = field(default_factory=list)

    @property
    def status_codes(self) -> list[int]:
        return [s.code for s in self.statuses]


def transport_for(sim: ZvtSimulator) -> ZvtTransport:
    if sim.mode == "tcp":
        return TcpTransport("127.0.0.1", sim.port, TIMEOUTS)
    assert sim.device is not None
    return SerialTransport(sim.device, timeouts=TIMEOUTS)


def new_client(sim: ZvtSimulator, statuses: list[IntermediateStatus], **kw: object) -> ZvtClient:
    client = ZvtClient(transport_for(sim), on_status=statuses.append, **kw)  # type: ignore[arg-type]
    client.connect()
    return client


@pytest.fixture(params=["pty", "tcp"])
def sim(request: pytest.FixtureRequest) -> Iterator[ZvtSimulator]:
    simulator = ZvtSimulator(
        request.param,
        step_delay=0.005,
        response_timeout=1.5,
        t2=1.0,
        power_off_seconds=0.3,
    ).start()
    yield simulator
    simulator.stop()
    # Whatever a test did, the driver never asked for card data or Read Card.
    assert not simulator.card_data_requested
    assert all(raw[:2] != b"\x06\xc0" for raw in simulator.received)


@pytest.fixture
def rig(sim: ZvtSimulator) -> Iterator[Rig]:
    statuses: list[IntermediateStatus] = []
    client = new_client(sim, statuses)
    yield Rig(sim, client, statuses)
    client.close()


def test_approval_with_statuses_and_receipt(rig: Rig) -> None:
    rig.sim.approve("visa")
    result = rig.client.authorise(1234)
    assert result.outcome is Outcome.APPROVED and result.approved
    assert (result.result_code, result.message) == (0, "Approved.")
    assert result.amount == 1234
    assert result.masked_pan == "476173******0119"
    assert (result.brand, result.card_type) == ("Visa", 10)
    assert result.auth_code and result.auth_code.isdigit()
    assert (result.trace_number, result.receipt_number) == (1, 1)
    assert result.terminal_id == "52500001"
    assert not result.offline and not result.needs_recovery
    assert rig.status_codes == [0x0A, 0x68, 0x01, 0x04, 0x0B]
    assert rig.statuses[0].text == "Insert card"
    assert result.receipt_lines[0] == "Tillbox Simulated Terminal"
    assert "Card 476173******0119" in result.receipt_lines
    assert result.receipt_lines[-2:] == ("AMOUNT EUR         12.34", "APPROVED")
    assert [(b.kind, b.amount, b.receipt) for b in rig.sim.batch] == [("sale", 1234, 1)]


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (0x05, "Card declined. Ask for another card or payment method."),
        (0x33, "Card declined: not enough funds. Ask for another card or payment method."),
    ],
)
def test_decline_with_code_and_message(rig: Rig, code: int, message: str) -> None:
    rig.sim.decline(code)
    result = rig.client.authorise(5000)
    assert result.outcome is Outcome.DECLINED
    assert (result.result_code, result.message) == (code, message)
    assert f"DECLINED ({code:02X})" in result.receipt_lines
    assert not result.needs_recovery
    assert rig.sim.batch == []


def test_customer_cancel(rig: Rig) -> None:
    rig.sim.customer_cancel()
    result = rig.client.authorise(700)
    assert result.outcome is Outcome.ABORTED
    assert result.result_code == 0x6C
    assert "cancelled" in result.message
    assert rig.sim.batch == []


def test_cashier_abort_request(rig: Rig) -> None:
    rig.sim.step_delay = 0.1

    def on_status(status: IntermediateStatus) -> None:
        if status.code == 0x0A:
            assert rig.client.request_abort()

    result = rig.client.authorise(700, on_status=on_status)
    assert result.outcome is Outcome.ABORTED and result.result_code == 0x6C
    assert rig.sim.batch == []
    assert not rig.client.request_abort()  # nothing runs any more


def test_terminal_stops_answering_gives_timeout(rig: Rig) -> None:
    rig.sim.stop_answering()
    started = time.monotonic()
    result = rig.client.authorise(1500)
    assert time.monotonic() - started < TIMEOUTS.t4 + 1.0
    assert result.outcome is Outcome.TIMEOUT
    assert result.needs_recovery
    assert "Repeat last receipt" in result.message
    assert rig.sim.batch == []
    assert rig.client.status_enquiry().approved  # the link recovers for the next command


def test_disconnect_mid_transaction(rig: Rig) -> None:
    rig.sim.disconnect()
    result = rig.client.authorise(1500)
    assert result.outcome is Outcome.ERROR
    assert result.needs_recovery
    assert "connection" in result.message
    assert rig.sim.batch == []
    if rig.sim.mode == "tcp":
        rig.sim.approve()
        assert rig.client.authorise(1500).approved  # reconnects by itself


def test_power_loss_after_approval_recovered_by_repeat_receipt(rig: Rig) -> None:
    rig.sim.power_loss_after_approval("mastercard")
    result = rig.client.authorise(4321)
    assert result.outcome in (Outcome.TIMEOUT, Outcome.ERROR)
    assert result.needs_recovery and result.receipt_number is None
    booked = rig.sim.last_booking
    assert booked is not None and booked.amount == 4321  # the terminal did book it

    recovered = rig.client.repeat_last_receipt()
    assert recovered.approved
    assert recovered.amount == 4321
    assert recovered.receipt_number == booked.receipt
    assert recovered.trace_number == booked.trace
    assert recovered.brand == "Mastercard"
    assert recovered.masked_pan == "545454******5454"
    assert recovered.receipt_lines[0] == "*** COPY ***"


def test_power_loss_before_approval_books_nothing(rig: Rig) -> None:
    rig.sim.approve()
    first = rig.client.authorise(100)
    rig.sim.power_loss_before_approval()
    lost = rig.client.authorise(999)
    assert lost.needs_recovery
    assert [b.amount for b in rig.sim.batch] == [100]
    last = rig.client.repeat_last_receipt()
    # The terminal's last booking is the earlier sale: the 9.99 was never charged.
    assert (last.amount, last.receipt_number) == (100, first.receipt_number)


def test_repeat_receipt_with_nothing_booked(rig: Rig) -> None:
    result = rig.client.repeat_last_receipt()
    assert result.outcome is Outcome.ERROR
    assert result.result_code == 0x83


def test_unreadable_result_is_refused_so_the_terminal_reverses(rig: Rig) -> None:
    rig.sim.garble_next_status()
    result = rig.client.authorise(1750)
    assert rig.sim.pending_faults["garble"] == 0
    assert result.outcome is Outcome.ERROR
    assert result.needs_recovery
    assert rig.sim.batch == []
    assert any("auto-reversal" in event for event in rig.sim.events)


def test_offline_approval(rig: Rig) -> None:
    rig.sim.offline_approval()
    result = rig.client.authorise(2500)
    assert result.approved and result.offline
    assert 0xF3 in rig.status_codes
    assert "OFFLINE APPROVED" in result.receipt_lines


def test_refund(rig: Rig) -> None:
    result = rig.client.refund(500)
    assert result.approved and result.amount == 500
    assert "REFUND" in result.receipt_lines
    assert [(b.kind, b.amount) for b in rig.sim.batch] == [("refund", 500)]


def test_reversal_by_receipt_number(rig: Rig) -> None:
    sale = rig.client.authorise(1000)
    assert sale.receipt_number is not None
    void = rig.client.reverse(sale.receipt_number)
    assert void.approved and void.amount == 1000
    assert void.receipt_number != sale.receipt_number
    assert rig.sim.batch[0].reversed
    again = rig.client.reverse(sale.receipt_number)
    assert again.outcome is Outcome.DECLINED and again.result_code == 0xB4
    assert again.message == "This payment was already reversed. Nothing more to do."
    unknown = rig.client.reverse(999)
    assert unknown.result_code == 0xB5 and "refund" in unknown.message


def test_end_of_day_totals_per_brand(rig: Rig) -> None:
    sim, client = rig.sim, rig.client
    for card, amount in [
        ("visa", 1000),
        ("visa", 250),
        ("girocard", 500),
        ("mastercard", 999),
        ("amex", 100),
    ]:
        sim.approve(card)
        assert client.authorise(amount).approved
    assert client.reverse(5).approved  # the amex sale
    sim.approve("girocard")
    assert client.refund(200).approved

    running = client.turnover_totals()
    assert running.approved and running.totals is not None
    assert len(sim.batch) == 7  # totals do not close the batch

    eod = client.end_of_day()
    assert eod.approved and eod.totals is not None
    totals = eod.totals
    assert (totals.receipt_from, totals.receipt_to) == (1, 7)
    by_brand = {b.name: (b.count, b.total) for b in totals.brands}
    assert by_brand == {
        "girocard": (2, 300),
        "JCB": (0, 0),
        "Eurocard/Mastercard": (1, 999),
        "American Express": (0, 0),
        "Visa": (2, 1250),
        "Diners": (0, 0),
        "Other cards": (0, 0),
    }
    assert eod.amount == totals.total == 2549
    assert running.totals == totals
    assert "END OF DAY" in eod.receipt_lines
    assert sim.batch == []

    empty = client.end_of_day()
    assert empty.totals is not None and empty.totals.count == 0 and empty.amount == 0


def test_status_enquiry(rig: Rig) -> None:
    result = rig.client.status_enquiry()
    assert result.approved
    assert (result.terminal_status, result.sw_version) == (0, "SIM-1.0")


def test_text_blocks_instead_of_print_lines(rig: Rig) -> None:
    rig.client.close()
    client = new_client(rig.sim, rig.statuses, text_blocks=True)
    try:
        result = client.authorise(1234)
        assert result.approved
        assert result.receipt_lines[-2:] == ("AMOUNT EUR         12.34", "APPROVED")
        assert any(raw[:2] == b"\x06\x00" and b"\x06\xd3" in raw for raw in rig.sim.received)
    finally:
        client.close()


def test_wrong_currency_is_refused_at_registration(sim: ZvtSimulator) -> None:
    client = ZvtClient(transport_for(sim), currency=840)
    try:
        result = client.register()
        assert result.outcome is Outcome.ERROR and result.result_code == 0x6F
        assert "currency" in result.message
        with pytest.raises(ZvtProtocolError):
            client.connect()
    finally:
        client.close()


# --- serial-only faults: CRC, garbage, NAK -------------------------------------------


@pytest.fixture
def serial_rig() -> Iterator[Rig]:
    sim = ZvtSimulator("pty", step_delay=0.005, response_timeout=1.5, t2=1.0).start()
    statuses: list[IntermediateStatus] = []
    client = new_client(sim, statuses)
    yield Rig(sim, client, statuses)
    client.close()
    sim.stop()


def test_bad_crc_frames_are_nakked_and_repeated(serial_rig: Rig) -> None:
    reference = serial_rig.client.authorise(1234)
    serial_rig.sim.corrupt_next(2)
    result = serial_rig.client.authorise(1234)
    assert serial_rig.sim.pending_faults["corrupt"] == 0
    assert result.approved
    # Repeated frames are not taken twice: the receipt is the same shape.
    assert len(result.receipt_lines) == len(reference.receipt_lines)
    assert len(serial_rig.sim.batch) == 2


def test_garbage_between_frames_is_ignored(serial_rig: Rig) -> None:
    serial_rig.sim.garbage_next(b"\x00\xff\x10\x99junk\x10")
    assert serial_rig.client.authorise(300).approved


def test_nak_storm_recovery(serial_rig: Rig) -> None:
    serial_rig.sim.nak_next(2)  # command frame NAKed twice, taken the third time
    result = serial_rig.client.authorise(800)
    assert serial_rig.sim.pending_faults["nak"] == 0
    assert result.approved
    assert len(serial_rig.sim.batch) == 1


def test_lost_ack_does_not_send_the_command_twice(serial_rig: Rig) -> None:
    serial_rig.sim.lose_ack_next(1)  # the terminal takes the sale but its ACK never arrives
    result = serial_rig.client.authorise(900)
    assert serial_rig.sim.pending_faults["lose_ack"] == 0
    assert result.approved
    assert [raw[:2] for raw in serial_rig.sim.received].count(b"\x06\x01") == 1
    assert len(serial_rig.sim.batch) == 1


def test_nak_storm_gives_up_before_anything_happens(serial_rig: Rig) -> None:
    serial_rig.sim.nak_next(3)
    with pytest.raises(ZvtProtocolError):
        serial_rig.client.authorise(800)
    assert serial_rig.sim.pending_faults["nak"] == 0
    assert serial_rig.sim.batch == []
    serial_rig.sim.approve()
    assert serial_rig.client.authorise(800).approved


# --- links that cannot be opened -------------------------------------------------------


def test_unreachable_terminal_raises_connection_error() -> None:
    with ZvtSimulator("tcp") as sim:
        port = sim.port
    client = ZvtClient(TcpTransport("127.0.0.1", port, TIMEOUTS, connect_timeout=1.0))
    with pytest.raises(ZvtConnectionError):
        client.connect()
    serial_client = ZvtClient(SerialTransport("/dev/tillbox-no-such-port", timeouts=TIMEOUTS))
    with pytest.raises(ZvtConnectionError):
        serial_client.authorise(100)
