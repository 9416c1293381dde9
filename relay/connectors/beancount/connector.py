# The Beancount connector: keeps one file per store and day in step with the ledger.
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from relay.accounting.ledger import HANDLED, IGNORED

from ..base import (
    Bindings,
    Command,
    Connector,
    ConnectorConfig,
    Done,
    Drift,
    Event,
    Retry,
)
from ..keys import command_key
from ..mapping import FieldMapping
from .export import MAIN, export_day, validate, write_main


class BeancountConfig(ConnectorConfig):
    kind: Literal["beancount"] = "beancount"
    path: str = Field("/var/lib/tillbox/books", min_length=1, description="folder of the books")
    title: str = Field("Tillbox", min_length=1, max_length=200)
    operating_currencies: list[str] = Field(["EUR"], min_length=1)
    max_concurrent: int = Field(1, ge=1, le=1)


class BeancountConnector(Connector):
    """Plans one coalescing "write this store's day" command per money event; apply rewrites
    that day's file from the ledger (and the main file when accounts are new)."""

    kind: ClassVar[str] = "beancount"
    Config: ClassVar[type[ConnectorConfig]] = BeancountConfig
    needs_mapping: ClassVar[bool] = False
    handles: ClassVar[frozenset[str]] = HANDLED
    ignores: ClassVar[frozenset[str]] = IGNORED

    @property
    def folder(self) -> Path:
        conf = self.config
        assert isinstance(conf, BeancountConfig)
        return Path(conf.path)

    def check(self, mapping: FieldMapping | None) -> list[str]:
        folder = self.folder
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            return [f"path {folder}: cannot create it: {err.strerror or err}"]
        if not os.access(folder, os.W_OK):
            return [f"path {folder}: not writable by this user"]
        return []

    def plan(self, event: Event, mapping: FieldMapping | None) -> Sequence[Command]:
        tz = self.context.timezone_of
        day = tz.event_day(event) if tz is not None else event.at[:10]
        stream = "imports" if event.source == "import" else f"t/{event.store}/{event.terminal}"
        return [
            Command(
                kind="day",
                key=command_key("beancount.day", (), event.store, day),
                sources=(event.id,),
                store=event.store,
                day=day,
                payload={"store": event.store, "day": day, "stream": stream, "upto": event.seq},
                summary=f"books of {event.store} for {day}",
                coalesce=True,
            )
        ]

    def apply(self, command: Command, bindings: Bindings, uncertain: bool) -> Done:
        p = command.payload
        ledger = self.context.ledger
        if ledger is not None and not ledger.caught_up(p["stream"], int(p["upto"])):
            raise Retry("the ledger has not reached this event yet", after=0.2, quiet=True)
        conf = self.config
        assert isinstance(conf, BeancountConfig)
        engine = self.context.store.engine
        try:
            path = export_day(engine, self.folder, p["store"], p["day"])
            write_main(engine, self.folder, conf.title, conf.operating_currencies)
        except OSError as err:
            raise Retry(f"cannot write the books in {self.folder}: {err}") from err
        return Done({f"{p['store']}/{p['day']}": str(path)})

    def reconcile(self, bindings: Mapping[str, str]) -> list[Drift]:
        """Beancount's own loader over the books: every error it reports is drift."""
        main = self.folder / MAIN
        if not main.exists():
            return []
        return [Drift(str(main), "", problem) for problem in validate(main)]
