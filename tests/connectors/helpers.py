# Helpers for connector tests: relay.toml files, running the CLI, waiting for queues to settle.
from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from relay.connectors.runtime import Runtime


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    return json.dumps(str(v))


def write_config(
    path: Path,
    db_url: str,
    connectors: dict[str, dict[str, Any]] | None = None,
    broker: tuple[str, int] | None = None,
    timezone: str = "Europe/Berlin",
    http: dict[str, Any] | None = None,
) -> Path:
    """A relay.toml as an operator would write it (`http`: its `[http]` table)."""
    lines = ["version = 1", "", "[database]", f"url = {_value(db_url)}", ""]
    if broker is not None:
        lines += [
            "[broker]",
            f"host = {_value(broker[0])}",
            f"port = {broker[1]}",
            'client_id = "relay-accounting-test"',
            "",
        ]
    lines += ["[ingest]", "batch_size = 200", "max_batch_delay_ms = 5", ""]
    lines += ["[ledger]", f"timezone = {_value(timezone)}", ""]
    if http is not None:
        lines += ["[http]", *(f"{k} = {_value(v)}" for k, v in http.items()), ""]
    for name, table in (connectors or {}).items():
        lines.append(f"[connectors.{name}]")
        lines += [f"{k} = {_value(v)}" for k, v in table.items()]
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def settle(rt: Runtime, done: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Drive the runtime's workers (no threads) until `done()` or the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rt.ledger.run_once()
        for w in rt.workers:
            w.run_once()
        if done():
            for w in rt.workers:
                w.drain(5)
            return True
        time.sleep(0.05)
    return done()
