# The ledger as Beancount text: one file per store and day, a main file that opens and includes.
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from sqlalchemy import Engine

from relay.accounting.ledger import (
    LedgerTxn,
    all_accounts,
    balances,
    read_day,
    settled_accounts,
    to_decimal,
)
from relay.connectors.runtime import next_day

MAIN = "main.beancount"
HEADER = "; Written by the Tillbox relay from its ledger; it is rewritten, do not edit.\n"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def _amount(amount: int, currency: str) -> str:
    return f"{to_decimal(amount, currency)} {currency}"


def render_day(txns: Sequence[LedgerTxn], assertions: Iterable[tuple[str, str, int, str]]) -> str:
    """Transactions of one day, then the balance assertions (day, account, amount, currency)."""
    out = [HEADER]
    for t in txns:
        payee = f"{t.store}/{t.terminal}" if t.terminal else t.store
        out.append(f"{t.day} * {_quote(payee)} {_quote(t.narration)}\n")
        out.append(f"  event: {_quote(t.event_id)}\n")
        out.append(f"  kind: {_quote(t.kind)}\n")
        if t.ref:
            out.append(f"  ref: {_quote(t.ref)}\n")
        for account, amount in t.postings:
            out.append(f"  {account}  {_amount(amount, t.currency)}\n")
        out.append("\n")
    for day, account, amount, currency in assertions:
        out.append(f"{day} balance {account}  {_amount(amount, currency)}\n")
    return "".join(out)


def assertions_for(engine: Engine, txns: Sequence[LedgerTxn]) -> list[tuple[str, str, int, str]]:
    """Balance assertions for the accounts settled this day, dated the next morning.

    A till's drawer and card clearing are asserted to hold only what was posted to them after
    their settling transaction that day (normally nothing: zero); the acquirer clearing is
    asserted at its balance after a payout (zero once every closed batch is paid out).
    """
    last: dict[str, int] = {}
    currency: dict[str, str] = {}
    for i, t in enumerate(txns):
        for account in settled_accounts(t):
            last[account] = i
            currency[account] = t.currency
    out: list[tuple[str, str, int, str]] = []
    if not last:
        return out
    day = txns[0].day
    acquirer_balances: dict[str, int] | None = None
    for account, i in sorted(last.items()):
        if account.startswith("Assets:Clearing:Acquirer:"):
            if acquirer_balances is None:
                acquirer_balances = balances(engine, day, "Assets:Clearing:Acquirer:")
            expected = acquirer_balances.get(account, 0)
        else:
            expected = sum(a for t in txns[i + 1 :] for acc, a in t.postings if acc == account)
        out.append((next_day(day), account, expected, currency[account]))
    return out


def export_day(engine: Engine, folder: Path, store: str, day: str) -> Path:
    """Write `<folder>/<store>/<day>.beancount` from the ledger; its path."""
    txns = read_day(engine, store, day)
    text = render_day(txns, assertions_for(engine, txns))
    target = folder / store / f"{day}.beancount"
    write_atomic(target, text)
    return target


def render_main(engine: Engine, title: str, operating: Sequence[str]) -> str:
    out = [HEADER, f'option "title" {_quote(title)}\n']
    for cur in operating:
        out.append(f'option "operating_currency" "{cur}"\n')
    out.append("\n")
    for account, cur, first in all_accounts(engine):
        out.append(f"{first} open {account} {cur}\n")
    out.append('\ninclude "*/*.beancount"\n')
    return "".join(out)


def write_main(engine: Engine, folder: Path, title: str, operating: Sequence[str]) -> Path:
    target = folder / MAIN
    text = render_main(engine, title, operating)
    try:
        if target.read_text(encoding="utf-8") == text:
            return target
    except OSError:
        pass
    write_atomic(target, text)
    return target


def write_atomic(target: Path, text: str) -> None:
    """Write a whole file or nothing: a reader (or a crash) never sees half of it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def validate(main: Path) -> list[str]:
    """Load the books with beancount's own loader; its error messages ([] when clean)."""
    from beancount import loader

    loader.initialize(use_cache=False)  # no pickle cache files beside the books
    _, errors, _ = loader.load_file(str(main))
    out = []
    for e in errors:
        where = ""
        if isinstance(e.source, dict):
            where = f"{e.source.get('filename', '')}:{e.source.get('lineno', '')}: "
        out.append(f"{where}{e.message}")
    return out
