# purpose: the driver lets the caller record a result before acking it, and says when it refused.
from __future__ import annotations

from collections.abc import Iterator

import pytest
from hwsim.zvt import ZvtSimulator

from drivers.zvt import (
    TOTALS_BRANDS,
    Outcome,
    SerialTransport,
    StatusInformation,
    TcpTransport,
    ZvtClient,
    ZvtTimeouts,
    ZvtTransport,
    totals_brand,
)

TIMEOUTS = ZvtTimeouts(t1=0.2, t2=0.5, t3=1.0, t4=1.0)


@pytest.fixture(params=["pty", "tcp"])
def sim(request: pytest.FixtureRequest) -> Iterator[ZvtSimulator]:
    simulator = ZvtSimulator(request.param, step_delay=0.005, response_timeout=1.0, t2=0.5)
    yield simulator.start()
    simulator.stop()


def transport(sim: ZvtSimulator) -> ZvtTransport:
    if sim.mode == "tcp":
        return TcpTransport("127.0.0.1", sim.port, TIMEOUTS)
    assert sim.device is not None
    return SerialTransport(sim.device, timeouts=TIMEOUTS)


@pytest.fixture
def client(sim: ZvtSimulator) -> Iterator[ZvtClient]:
    c = ZvtClient(transport(sim))
    c.connect()
    yield c
    c.close()


def test_result_is_seen_before_the_terminal_books_it(sim: ZvtSimulator, client: ZvtClient) -> None:
    seen: list[tuple[StatusInformation, int]] = []
    sim.approve("visa")
    result = client.authorise(990, on_result=lambda info: seen.append((info, len(sim.batch))))
    assert result.approved
    ((info, booked_then),) = seen
    assert booked_then == 0  # not booked until our acknowledgement (and the receipt)
    assert (info.result_code, info.amount, info.receipt_number) == (0, 990, 1)
    assert info.masked_pan == "476173******0119"
    assert len(sim.batch) == 1


def test_a_failing_result_callback_makes_the_terminal_reverse(
    sim: ZvtSimulator, client: ZvtClient
) -> None:
    def cannot_record(_: StatusInformation) -> None:
        raise OSError("disk full")

    result = client.authorise(990, on_result=cannot_record)
    assert result.outcome is Outcome.ERROR and result.needs_recovery
    assert "could not record" in result.message
    assert sim.batch == []
    assert any("auto-reversal" in e for e in sim.events)
    sim.approve()
    assert client.authorise(990).approved  # the link is fine for the next one


def test_refused_commands_are_told_apart_from_answers(sim: ZvtSimulator, client: ZvtClient) -> None:
    nothing = client.repeat_last_receipt()  # 80 00, then 06 1E 83: nothing to repeat
    assert (nothing.result_code, nothing.refused) == (0x83, False)
    client.close()  # the simulator serves one TCP connection at a time
    wrong = ZvtClient(transport(sim), currency=840)
    try:
        refused = wrong.register()  # 84 1E 6F: the terminal did not take it
    finally:
        wrong.close()
    assert (refused.result_code, refused.refused) == (0x6F, True)


def test_card_types_count_in_their_totals_slot() -> None:
    assert totals_brand(5) == "girocard"
    assert totals_brand(6) == "Eurocard/Mastercard"
    assert totals_brand(10) == "Visa"
    assert totals_brand(46) == totals_brand(None) == "Other cards"
    assert {totals_brand(t) for t in range(256)} == set(TOTALS_BRANDS)
