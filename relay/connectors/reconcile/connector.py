# Runs the reconciliation of a store's day when it closes and publishes differences as alerts.
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import ClassVar, Literal

from relay.reconcile import Reconciler, alert_payload
from tillbox.contract import alerts_topic

from ..base import Bindings, Command, Connector, ConnectorConfig, Done, Event, Retry
from ..keys import command_key
from ..mapping import FieldMapping

log = logging.getLogger("tillbox.relay.reconcile")


class ReconcileConfig(ConnectorConfig):
    kind: Literal["reconcile"] = "reconcile"


class ReconcileConnector(Connector):
    """A shift close, a card batch close or an imported payout re-runs the reconciliation of
    that store's day; when its differences change, an alert goes out on
    `tillbox/v1/{store}/alerts` (docs/accounting.md)."""

    kind: ClassVar[str] = "reconcile"
    Config: ClassVar[type[ConnectorConfig]] = ReconcileConfig
    needs_mapping: ClassVar[bool] = False
    handles: ClassVar[frozenset[str]] = frozenset(
        {"shift.closed", "payment.batch_settled", "settlement.paid_out"}
    )
    ignores: ClassVar[frozenset[str]] = frozenset(
        {
            "sale.opened",
            "sale.line_added",
            "sale.line_changed",
            "sale.line_removed",
            "sale.discount_set",
            "sale.customer_set",
            "sale.payment_added",
            "sale.completed",
            "sale.refunded",
            "sale.voided",
            "drawer.opened",
            "shift.opened",
            "shift.cash_moved",
            "customer.captured",
        }
    )

    _rec: Reconciler | None = None

    def _reconciler(self) -> Reconciler:
        """One per connector: it keeps each store-day's events folded between reports."""
        if self._rec is None:
            ledger = self.context.ledger
            default = ledger.default_currency if ledger is not None else "EUR"
            self._rec = Reconciler(self.context.store.engine, self.context.timezone_of, default)
        return self._rec

    def check(self, mapping: FieldMapping | None) -> list[str]:
        return []

    def plan(self, event: Event, mapping: FieldMapping | None) -> Sequence[Command]:
        if event.type == "settlement.paid_out":
            batches = [[b["card_terminal"], b["batch"]] for b in event.data.get("batches", [])]
            return [
                Command(
                    kind="payout",
                    key=command_key("reconcile.payout", (event.id,)),
                    sources=(event.id,),
                    store=event.store,
                    day=str(event.data.get("day", "")),
                    payload={"store": event.store, "batches": batches},
                    summary=f"reconcile the days paid out by {event.data.get('payout_id')}",
                )
            ]
        day = self.context.timezone_of.event_day(event)
        return [
            Command(
                kind="day",
                key=command_key("reconcile.day", (), event.store, day),
                sources=(event.id,),
                store=event.store,
                day=day,
                payload={"store": event.store, "day": day},
                summary=f"reconcile {event.store} for {day}",
                coalesce=True,
            )
        ]

    def apply(self, command: Command, bindings: Bindings, uncertain: bool) -> Done:
        rec = self._reconciler()
        p = command.payload
        store = p["store"]
        if command.kind == "payout":
            days = rec.batch_days(store, [(str(a), str(b)) for a, b in p["batches"]])
        else:
            days = [p["day"]]
        for day in days:
            rep = rec.report(store, day)
            if not rec.save(rep):
                continue
            publish = self.context.publish
            if publish is None:
                continue  # no broker: the report is kept; `tillbox relay reconcile` shows it
            payload = alert_payload(rep, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
            try:
                publish(alerts_topic(store), json.dumps(payload).encode())
            except Exception as err:
                raise Retry(f"cannot publish the alert for {store} {day}: {err}") from err
            rec.mark_published(store, day, rep.digest())
            if rep.differences:
                log.warning(
                    "reconciliation of %s %s: %d difference(s): %s",
                    store,
                    day,
                    len(rep.differences),
                    "; ".join(d.detail for d in rep.differences[:5]),
                )
            else:
                log.info("reconciliation of %s %s: differences cleared", store, day)
        return Done(note=", ".join(days))
