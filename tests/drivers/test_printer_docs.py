# purpose: keep docs/printing.md honest about transports, errors, code pages and the simulator.
from __future__ import annotations

from pathlib import Path

import pytest
from hwsim.escpos import FAULTS, EscPosPrinterSim

import drivers.drawer
import drivers.printer
from drivers.printer.receipt import CODE_PAGES, PAPER_COLUMNS

DOC = (Path(__file__).resolve().parents[2] / "docs" / "printing.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "name",
    [
        n
        for n in drivers.printer.__all__ + drivers.drawer.__all__
        if n.endswith(("Printer", "Error", "Drawer"))
    ],
)
def test_every_printer_and_drawer_class_is_documented(name: str) -> None:
    assert f"`{name}" in DOC


@pytest.mark.parametrize("code_page", sorted(set(CODE_PAGES.values())))
def test_every_code_page_is_documented(code_page: str) -> None:
    assert code_page in DOC


@pytest.mark.parametrize(("paper", "columns"), sorted(PAPER_COLUMNS.items()))
def test_paper_widths_are_documented(paper: int, columns: int) -> None:
    assert f"| {paper} mm | `{paper}` | {columns} |" in DOC


def test_simulator_controls_are_documented() -> None:
    assert "python -m hwsim.escpos --tcp 9100" in DOC
    for method in ("start_tcp", "start_pty", "wait_for_receipts", "close_drawer", "set_fault"):
        assert hasattr(EscPosPrinterSim, method) and f"{method}(" in DOC
    for fault in ("paper_near_end", "paper_out", "cover_open", "offline"):
        assert fault in FAULTS and f"set_{fault}()" in DOC
