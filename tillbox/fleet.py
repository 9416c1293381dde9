# purpose: the operator's side of fleet commands: publish cmd/update, read statuses and results.
"""`tillbox fleet update` and `tillbox fleet status` (docs/updates.md).

The operator connects with its own certificate (`tillbox certs operator`); the broker lets
that identity write `tillbox/v1/+/+/cmd/#` and read every `status` and `cmd-result`.
Which terminals exist is learnt from their retained status messages, so a box that has
never connected cannot be addressed with `--all` (name it with `--terminal`). A box that
is offline still gets the command: its persistent session keeps it at the broker.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from tillbox.contract import TOPIC_PREFIX, cmd_topic, valid_id
from tillbox.devbroker import MqttSettings


class FleetError(Exception):
    """The operator's request cannot be carried out; the message says what to do."""


Box = tuple[str, str]  # (store, terminal)


@dataclass
class _Inbox:
    statuses: dict[Box, dict[str, Any]] = field(default_factory=dict)
    results: list[tuple[Box, dict[str, Any]]] = field(default_factory=list)
    subacks: set[int] = field(default_factory=set)
    pubacks: dict[int, ReasonCode] = field(default_factory=dict)
    connack: ReasonCode | None = None


def _box(topic: str) -> Box | None:
    parts = topic.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != TOPIC_PREFIX:
        return None
    return parts[2], parts[3]


class Operator:
    """A connected operator client that waits for the broker's answers."""

    def __init__(self, settings: MqttSettings, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self.inbox = _Inbox()
        self._cond = threading.Condition()
        self.client = settings.new_client(f"tillbox-operator-{uuid.uuid4().hex[:8]}")
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        try:
            self.client.connect(settings.host, settings.port, keepalive=30)
        except OSError as err:
            raise FleetError(f"cannot connect to {settings.host}:{settings.port}: {err}") from err
        self.client.loop_start()
        connack = self._wait(lambda: self.inbox.connack, "CONNACK")
        if connack.is_failure:
            self.close()
            raise FleetError(f"the broker refused the operator: {connack}")

    def close(self) -> None:
        if self.client.is_connected():
            self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Operator:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _wait(self, check: Any, what: str, timeout: float | None = None) -> Any:
        with self._cond:
            if not self._cond.wait_for(check, timeout or self.timeout):
                raise FleetError(f"no {what} from the broker within {timeout or self.timeout} s")
            return check()

    def subscribe(self, topic_filter: str) -> None:
        _, mid = self.client.subscribe(topic_filter, qos=1)
        assert mid is not None
        self._wait(lambda: mid in self.inbox.subacks, f"SUBACK for {topic_filter}")

    def publish(self, topic: str, doc: dict[str, Any]) -> None:
        info = self.client.publish(topic, json.dumps(doc, separators=(",", ":")), qos=1)
        code: ReasonCode = self._wait(lambda: self.inbox.pubacks.get(info.mid), "PUBACK")
        if code.is_failure:
            raise FleetError(f"the broker refused {topic}: {code} (is this the operator's cert?)")

    def statuses(self, store: str | None, settle: float) -> dict[Box, dict[str, Any]]:
        """Every retained status under `store` (all stores when None)."""
        self.subscribe(f"{TOPIC_PREFIX}/{store or '+'}/+/status")
        time.sleep(settle)  # retained messages follow the SUBACK at once; give them a moment
        with self._cond:
            return dict(self.inbox.statuses)

    def results_after(self, count: int, timeout: float) -> list[tuple[Box, dict[str, Any]]]:
        """The cmd-results beyond the first `count`, waiting up to `timeout` for one."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.inbox.results) > count, timeout)
            return self.inbox.results[count:]

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, p: Any) -> None:
        with self._cond:
            self.inbox.connack = rc
            self._cond.notify_all()

    def _on_subscribe(self, client: mqtt.Client, u: Any, mid: int, rcs: Any, p: Any) -> None:
        with self._cond:
            self.inbox.subacks.add(mid)
            self._cond.notify_all()

    def _on_publish(self, client: mqtt.Client, u: Any, mid: int, rc: ReasonCode, p: Any) -> None:
        with self._cond:
            self.inbox.pubacks[mid] = rc
            self._cond.notify_all()

    def _on_message(self, client: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        box = _box(msg.topic)
        if box is None:
            return
        try:
            doc = json.loads(msg.payload)
        except ValueError:
            return
        if not isinstance(doc, dict):
            return
        with self._cond:
            if msg.topic.endswith("/status"):
                if msg.payload:
                    self.inbox.statuses[box] = doc
            else:
                self.inbox.results.append((box, doc))
            self._cond.notify_all()


def update_command(
    url: str, version: str, sha256: str | None, cmd_id: str | None
) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": cmd_id or uuid.uuid4().hex, "url": url, "version": version}
    if sha256:
        doc["sha256"] = sha256.lower()
    return doc


def send_update(
    settings: MqttSettings,
    store: str | None,
    terminal: str | None,
    command: dict[str, Any],
    out: TextIO,
    wait_s: float = 0.0,
    settle: float = 1.0,
) -> int:
    """Publish `cmd/update` to one box, a store's boxes or the fleet's; exit status."""
    for what, value in (("store", store), ("terminal", terminal)):
        if value is not None and not valid_id(value):
            raise FleetError(f"{what} id {value!r} is not valid")
    with Operator(settings) as op:
        if terminal is not None:
            if store is None:
                raise FleetError("--terminal needs --store")
            boxes = [(store, terminal)]
        else:
            boxes = sorted(op.statuses(store, settle))
            if not boxes:
                where = f"store {store}" if store else "the fleet"
                raise FleetError(f"no terminal of {where} has ever reported a status")
        op.subscribe(f"{TOPIC_PREFIX}/+/+/cmd-result")
        for box in boxes:
            op.publish(cmd_topic(*box, "update"), command)
            sent = f"sent update {command['id']} ({command['version']})"
            print(f"{sent} to {box[0]}/{box[1]}", file=out)
        if wait_s <= 0:
            return 0
        return _follow(op, set(boxes), command["id"], wait_s, out)


def _follow(op: Operator, boxes: set[Box], cmd_id: str, wait_s: float, out: TextIO) -> int:
    """Print each box's progress until all are final; 0 if all installed, 1 if any failed."""
    deadline = time.monotonic() + wait_s
    seen = 0
    final: dict[Box, dict[str, Any]] = {}
    while len(final) < len(boxes):
        left = deadline - time.monotonic()
        fresh = op.results_after(seen, max(0.0, left))
        seen += len(fresh)
        for box, doc in fresh:
            if box not in boxes or doc.get("id") != cmd_id:
                continue
            print(f"{box[0]}/{box[1]}: {describe(doc)}", file=out)
            if doc.get("final"):
                final[box] = doc
        if left <= 0:
            missing = ", ".join(f"{s}/{t}" for s, t in sorted(boxes - final.keys()))
            print(f"no final result within {wait_s:.0f} s from {missing}", file=out)
            return 3
    return 0 if all(doc.get("ok") for doc in final.values()) else 1


def describe(doc: dict[str, Any]) -> str:
    """One line for an update's state (a cmd-result or a status's `update` object)."""
    text = str(doc.get("state", "?"))
    if doc.get("version"):
        text += f" {doc['version']}"
    if doc.get("progress") is not None:
        text += f" {doc['progress']}%"
    for key in ("message", "error"):
        if doc.get(key):
            text += f" ({doc[key]})"
    return text


def show_status(settings: MqttSettings, store: str | None, out: TextIO, settle: float = 1.0) -> int:
    """A table of every box's retained status."""
    with Operator(settings) as op:
        statuses = op.statuses(store, settle)
    rows = [("BOX", "STATE", "VERSION", "OUTBOX", "UPDATE", "SINCE")]
    for (s, t), doc in sorted(statuses.items()):
        update = doc.get("update")
        rows.append(
            (
                f"{s}/{t}",
                str(doc.get("state", "?")),
                str(doc.get("version", "")),
                str(doc.get("outbox", "")),
                describe(update) if isinstance(update, dict) else "-",
                str(doc.get("at", "")),
            )
        )
    _table(rows, out)
    if len(rows) == 1:
        print("no terminal has reported a status yet", file=out)
    return 0


def _table(rows: Iterable[tuple[str, ...]], out: TextIO) -> None:
    rows = list(rows)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip(), file=out)
