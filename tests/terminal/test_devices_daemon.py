# purpose: whole-sale scenarios: the real daemon against the hw-sim printer, drawer and scanner.
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from terminal.journal import Reader
from tests.conftest import MANAGER_PIN
from tests.terminal.devices_rig import Rig, device_event, journal_event, wait_until

# Demo items with accents in their names, sold by the piece.
KAESE = ("4278615606429", "Überbackenes Käsebrötchen", 145)
KUERBIS = ("4264985443146", "Kürbiskernbrötchen", 75)
CARD = {"brand": "girocard", "masked_pan": "672559XXXXXX1234", "auth_code": "123456"}


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    try:
        yield r
    finally:
        r.close()


def open_shift(rig: Rig) -> None:
    assert rig.client.post("/shifts", json={"opening_float": 10000}).status_code == 201


def scan_sale(rig: Rig, *codes: str) -> str:
    """Scan codes into the newest open sale (opening one); its id once all lines are on it."""
    for code in codes:
        rig.scanner.scan(code)
        rig.stream.wait(journal_event("sale.line_added", barcode=code))
    sales = rig.client.get("/sales").json()["sales"]
    assert len(sales) == 1
    return str(sales[0]["sale_id"])


def drawer_events(rig: Rig) -> list[dict[str, Any]]:
    journal = Reader(rig.daemon.config.journal_path)
    try:
        return [e["data"] for e in journal.events_from(1) if e["type"] == "drawer.opened"]
    finally:
        journal.close()


def queue_view(rig: Rig) -> list[dict[str, Any]]:
    receipts: list[dict[str, Any]] = rig.client.get("/receipts/queue").json()["receipts"]
    return receipts


def device(rig: Rig, kind: str) -> dict[str, Any]:
    devices = rig.client.get("/devices").json()["devices"]
    found: dict[str, Any] = next(d for d in devices if d["kind"] == kind)
    return found


def test_scan_cash_sale_prints_the_receipt_and_opens_the_drawer(rig: Rig) -> None:
    open_shift(rig)
    sale_id = scan_sale(rig, KAESE[0], KUERBIS[0], KAESE[0])
    done = rig.client.post(
        f"/sales/{sale_id}/payments", json={"method": "cash", "tendered": 5000}
    ).json()
    assert done["status"] == "completed"
    (receipt,) = rig.printer.wait_for_receipts(1)
    text = receipt.text
    assert receipt.lines[0].text == "Eckladen Müller"
    assert text.count(KAESE[1]) == 2 and KUERBIS[1] in text
    assert re.search(r"SUMME +3,65 €", text)
    assert re.search(r"Rückgeld +46,35 €", text)
    assert [(b.symbology, b.data) for b in receipt.barcodes] == [("CODE128", done["receipt_no"])]
    assert done["receipt_no"] in text and receipt.cut == "partial"
    kick = rig.stream.wait(device_event("drawer_kick", outcome="fired"))
    assert kick["reason"] == "sale" and kick["opened"] is True
    rig.stream.wait(journal_event("drawer.opened", reason="sale", sale_id=sale_id))
    assert rig.printer.drawer_open
    (opened,) = drawer_events(rig)
    assert opened["opened"] is True and opened["for_receipt"] == done["receipt_no"]
    assert rig.client.get("/shifts/current").json()["report"]["no_sales"] == 0
    assert queue_view(rig) == []


def test_paper_out_queues_the_receipt_until_paper_is_back(rig: Rig) -> None:
    open_shift(rig)
    rig.printer.set_paper_out()
    rig.stream.wait(device_event("health", **{"device.kind": "printer"}))
    assert "paper_out" in device(rig, "printer")["conditions"]
    sale_id = scan_sale(rig, KAESE[0])
    done = rig.client.post(f"/sales/{sale_id}/payments", json={"method": "card", "card": CARD})
    assert done.json()["status"] == "completed"
    failed = rig.stream.wait(device_event("print_failed", reason="paper_out"))
    assert failed["receipt_no"] == done.json()["receipt_no"] and "roll" in failed["message"]
    (queued,) = queue_view(rig)
    assert (queued["receipt_no"], queued["reason"]) == (done.json()["receipt_no"], "paper_out")
    assert rig.client.get(f"/sales/{sale_id}").json()["status"] == "completed"
    assert rig.printer.receipts == []
    assert httpx.get(f"{rig.daemon.url}/healthz").json()["devices"]["receipts_queued"] == 1

    rig.printer.set_paper_out(False)
    printed = rig.stream.wait(device_event("printed", origin="queue"))
    assert printed["receipt_no"] == done.json()["receipt_no"] and printed["queued"] == 0
    (receipt,) = rig.printer.wait_for_receipts(1)
    assert KAESE[1] in receipt.text
    assert queue_view(rig) == []
    assert drawer_events(rig) == []  # a card sale does not open the drawer


def test_printer_vanishing_mid_receipt_queues_it_and_prints_it_whole_later(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path, proxy=True)
    try:
        assert rig.proxy is not None
        open_shift(rig)
        sale_id = scan_sale(rig, KUERBIS[0])
        rig.proxy.cut_after(300)  # the status requests, then part of the receipt
        done = rig.client.post(f"/sales/{sale_id}/payments", json={"method": "card", "card": CARD})
        receipt_no = done.json()["receipt_no"]
        failed = rig.stream.wait(device_event("print_failed", receipt_no=receipt_no))
        assert failed["reason"] in ("transport", "offline")
        rig.stream.wait(
            device_event("health", **{"device.kind": "printer", "device.state": "offline"})
        )
        assert [q["receipt_no"] for q in queue_view(rig)] == [receipt_no]
        assert rig.printer.receipts == []  # nothing was cut: the paper holds a torn half
        assert rig.client.get(f"/sales/{sale_id}").json()["status"] == "completed"

        rig.proxy.heal()
        rig.stream.wait(device_event("printed", receipt_no=receipt_no, origin="queue"))
        (receipt,) = rig.printer.wait_for_receipts(1)
        assert KUERBIS[1] in receipt.text and receipt.barcodes[0].data == receipt_no
        assert queue_view(rig) == []
    finally:
        rig.close()


def test_cover_open_is_shown_and_blocks_printing_until_closed(rig: Rig) -> None:
    open_shift(rig)
    rig.printer.set_cover_open()
    health = rig.stream.wait(device_event("health", **{"device.kind": "printer"}))
    assert "cover_open" in health["changes"] and "cover" in health["message"]
    sale_id = scan_sale(rig, KAESE[0])
    done = rig.client.post(f"/sales/{sale_id}/payments", json={"method": "card", "card": CARD})
    rig.stream.wait(device_event("print_failed", reason="cover_open"))
    rig.printer.set_cover_open(False)
    rig.stream.wait(device_event("printed", receipt_no=done.json()["receipt_no"]))
    assert len(rig.printer.wait_for_receipts(1)) == 1


def test_jammed_drawer_is_journaled_and_announced(rig: Rig) -> None:
    open_shift(rig)
    rig.printer.set_drawer_jammed()
    sale_id = scan_sale(rig, KAESE[0])
    rig.client.post(f"/sales/{sale_id}/payments", json={"method": "cash", "tendered": 145})
    jammed = rig.stream.wait(device_event("drawer_kick", outcome="jammed"))
    assert jammed["opened"] is False and "did not open" in jammed["message"]
    rig.stream.wait(journal_event("drawer.opened", reason="sale", opened=False))
    assert not rig.printer.drawer_open and len(rig.printer.drawer_kicks) == 1
    assert "jammed" in device(rig, "drawer")["conditions"]


def test_stale_kick_is_dropped_never_fired_late(rig: Rig) -> None:
    open_shift(rig)
    sale_id = scan_sale(rig, KAESE[0])
    rig.printer.set_offline()
    rig.client.post(f"/sales/{sale_id}/payments", json={"method": "cash", "tendered": 200})
    rig.stream.wait(device_event("drawer_kick", outcome="waiting"))
    stale = rig.stream.wait(device_event("drawer_kick", outcome="stale"), timeout=15)
    assert stale["reason"] == "sale" and "key" in stale["message"]
    rig.printer.set_offline(False)
    rig.stream.wait(device_event("printed", origin="queue"), timeout=15)
    assert rig.printer.drawer_kicks == [] and not rig.printer.drawer_open
    assert drawer_events(rig) == []


def test_bad_scanner_lines_never_change_the_sale(rig: Rig) -> None:
    open_shift(rig)
    sale_id = scan_sale(rig, KAESE[0])
    before = rig.client.get(f"/sales/{sale_id}").json()
    rig.scanner.send_garbage()
    rig.stream.wait(device_event("scan_dropped", reason="garbage"))
    rig.scanner.send_overlong(200)
    rig.stream.wait(device_event("scan_dropped", reason="overlong"))
    rig.scanner.scan("4012345678902")  # wrong check digit
    refused = rig.stream.wait(device_event("scan_refused", code="bad_barcode"))
    assert "not valid" in refused["message"]
    rig.scanner.scan("4006381333931")  # a valid EAN no item has
    refused = rig.stream.wait(device_event("scan_refused", code="unknown_barcode"))
    assert "No item has barcode 4006381333931" in refused["message"]
    rig.scanner.send_partial("400638")  # cut off: runs into the next scan, which is refused
    rig.scanner.scan(KUERBIS[0])
    rig.stream.wait(device_event("scan_refused", code="bad_barcode"))
    assert rig.client.get(f"/sales/{sale_id}").json() == before
    rig.scanner.scan(KUERBIS[0])  # and the scanner goes on working
    rig.stream.wait(journal_event("sale.line_added", barcode=KUERBIS[0], sale_id=sale_id))


def test_scan_without_a_login_is_refused_with_a_device_event(rig: Rig) -> None:
    open_shift(rig)
    assert rig.client.delete("/sessions/current").status_code == 204
    rig.scanner.scan(KAESE[0])
    refused = rig.stream.wait(device_event("scan_refused", code="login_required"))
    assert "Log in" in refused["message"]
    manager = rig.daemon.client(MANAGER_PIN)
    assert manager.get("/sales").json()["sales"] == []


def test_unplugged_scanner_keeps_its_id_and_scans_again(rig: Rig) -> None:
    open_shift(rig)
    scanner_id = device(rig, "scanner")["id"]
    rig.scanner.unplug()
    gone = rig.stream.wait(device_event("health", **{"device.kind": "scanner"}))
    assert gone["device"]["state"] == "offline" and gone["device"]["id"] == scanner_id
    assert "not connected" in gone["message"]
    rig.scanner.replug()
    back = rig.stream.wait(device_event("health", **{"device.id": scanner_id}))
    assert back["device"]["state"] == "online"
    scan_sale(rig, KAESE[0])
    assert device(rig, "scanner")["id"] == scanner_id


def test_no_sale_kicks_the_drawer(rig: Rig) -> None:
    open_shift(rig)
    answer = rig.client.post(
        "/drawer/open", json={"reason": "change"}, headers={"X-Manager-Pin": MANAGER_PIN}
    )
    assert answer.status_code == 200
    kick = rig.stream.wait(device_event("drawer_kick", outcome="fired"))
    assert kick["reason"] == "no_sale"
    assert rig.printer.drawer_open and len(rig.printer.drawer_kicks) == 1
    assert [d["reason"] for d in drawer_events(rig)] == ["no_sale"]
    assert rig.client.get("/shifts/current").json()["report"]["no_sales"] == 1


def test_reprint_of_a_past_sale_and_refund(rig: Rig) -> None:
    open_shift(rig)
    sale_id = scan_sale(rig, KAESE[0])
    done = rig.client.post(f"/sales/{sale_id}/payments", json={"method": "card", "card": CARD})
    rig.printer.wait_for_receipts(1)
    again = rig.client.post(f"/sales/{sale_id}/receipt/print").json()
    assert again["printed"] is True and again["receipt_no"] == done.json()["receipt_no"]
    assert len(rig.printer.wait_for_receipts(2)) == 2
    refund = rig.client.post(
        f"/sales/{sale_id}/refunds",
        json={"to": "cash", "reason": "faulty"},
        headers={"X-Manager-Pin": MANAGER_PIN},
    ).json()["refunds"][0]
    receipts = rig.printer.wait_for_receipts(3)
    assert "ERSTATTUNG" in receipts[2].text and receipts[2].barcodes[0].data == refund["receipt_no"]
    rig.stream.wait(journal_event("drawer.opened", reason="refund", sale_id=sale_id))
    missing = rig.client.post("/sales/nope/receipt/print")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "unknown_sale")


def test_reprint_queue_survives_a_restart(rig: Rig) -> None:
    open_shift(rig)
    rig.printer.set_paper_out()
    sale_id = scan_sale(rig, KAESE[0])
    rig.client.post(f"/sales/{sale_id}/payments", json={"method": "card", "card": CARD})
    rig.stream.wait(device_event("print_failed"))
    rig.stream.close()
    rig.daemon.stop()
    rig.daemon.start()
    client = rig.daemon.client()
    (queued,) = client.get("/receipts/queue").json()["receipts"]
    assert queued["sale_id"] == sale_id
    rig.printer.set_paper_out(False)
    wait_until(lambda: client.get("/receipts/queue").json()["receipts"] == [])
    assert KAESE[1] in rig.printer.wait_for_receipts(1)[0].text
    metrics = httpx.get(f"{rig.daemon.url}/metrics").text
    assert "tillbox_receipts_queued 0" in metrics
    assert re.search(r'tillbox_device_up\{id="printer:[^"]+",kind="printer"\} 1', metrics)
