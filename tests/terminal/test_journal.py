# The journal: one durable transaction per unit, a verifiable hash chain, tamper evidence.
from __future__ import annotations

import hashlib
import itertools
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from terminal.journal import COLUMNS, Journal, JournalError, NewEvent, Reader, verify, wire
from tillbox.contract import GENESIS_HASH, canonical, validate_envelope


def fill(path: Path, n: int = 6) -> list[dict]:
    journal = Journal(path, "s1", "t1")
    envs = []
    for i in range(n):
        envs += journal.append(
            [
                NewEvent(
                    f"00000000-0000-4000-8000-{i:012d}",
                    "sale.opened",
                    {"sale_id": f"sale-{i}", "note": "Brötchen €"},
                )
            ],
            f"2026-11-27T10:00:0{i}.000Z",
        )
    journal.close()
    return envs


def independent_hash(env: dict) -> str:
    """Recompute a hash without our code: JCS equals sorted, compact JSON for ints and strings."""
    body = {k: v for k, v in env.items() if k != "hash"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def raw(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("DROP TRIGGER events_no_delete")
    return conn


def test_chain_links_and_hashes_are_recomputable(tmp_path: Path) -> None:
    envs = fill(tmp_path / "j.sqlite")
    assert [e["seq"] for e in envs] == [1, 2, 3, 4, 5, 6]
    assert envs[0]["prev_hash"] == GENESIS_HASH
    for before, after in itertools.pairwise(envs):
        assert after["prev_hash"] == before["hash"]
    for env in envs:
        validate_envelope(env)
        assert independent_hash(env) == env["hash"]
    reader = Reader(tmp_path / "j.sqlite")
    assert list(reader.events_from(1)) == envs
    # What the uplink sends: canonical JSON, written around the stored data.
    rows = reader.conn.execute(f"SELECT {COLUMNS} FROM events ORDER BY seq").fetchall()
    assert [json.loads(wire(r)) for r in rows] == envs
    assert [wire(r) for r in rows] == [canonical(e) for e in envs]
    assert reader.outbox_stats()[0] == 6
    assert verify(tmp_path / "j.sqlite").ok


def test_reopen_continues_the_chain(tmp_path: Path) -> None:
    fill(tmp_path / "j.sqlite", 3)
    journal = Journal(tmp_path / "j.sqlite", "s1", "t1")
    env = journal.append(
        [NewEvent("00000000-0000-4000-8000-999999999999", "x.y", {})], "2026-11-27T11:00:00.000Z"
    )[0]
    assert env["seq"] == 4
    assert verify(tmp_path / "j.sqlite").ok


def test_journal_of_another_terminal_is_refused(tmp_path: Path) -> None:
    fill(tmp_path / "j.sqlite", 1)
    with pytest.raises(JournalError, match="belongs to store 's1' terminal 't1'"):
        Journal(tmp_path / "j.sqlite", "s1", "t2")


def test_rows_cannot_be_updated_or_deleted_through_sqlite(tmp_path: Path) -> None:
    fill(tmp_path / "j.sqlite", 2)
    conn = sqlite3.connect(tmp_path / "j.sqlite")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE events SET data = '{}' WHERE seq = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM events WHERE seq = 1")


def test_failed_unit_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    fill(path, 2)
    journal = Journal(path, "s1", "t1")
    dup = "00000000-0000-4000-8000-000000000000"  # id already used by seq 1
    with pytest.raises(JournalError):
        journal.append(
            [NewEvent("00000000-0000-4000-8000-aaaaaaaaaaaa", "a.b", {}), NewEvent(dup, "a.b", {})],
            "2026-11-27T11:00:00.000Z",
        )
    assert journal.seq == 2
    assert Reader(path).outbox_stats()[0] == 2
    assert verify(path).ok


@pytest.mark.parametrize(
    ("tamper", "bad_seq", "words"),
    [
        ("UPDATE events SET data = replace(data, 'sale-3', 'sale-X') WHERE seq = 4", 4, "edited"),
        ("UPDATE events SET at = '2026-11-27T09:00:00.000Z' WHERE seq = 2", 2, "edited"),
        ("DELETE FROM events WHERE seq = 3", 4, "missing"),
        ("DELETE FROM events WHERE seq = 1", 2, "missing"),
        # reorder: swap the contents of two rows, keeping their numbers
        (
            "UPDATE events SET seq = -5 WHERE seq = 5; UPDATE events SET seq = 5 WHERE seq = 4;"
            " UPDATE events SET seq = 4 WHERE seq = -5",
            4,
            "prev_hash",
        ),
        # insert: a forged event squeezed in, later rows renumbered
        (
            "UPDATE events SET seq = seq + 100 WHERE seq >= 3; UPDATE events SET seq = seq - 99 "
            "WHERE seq >= 103; INSERT INTO events (seq, id, type, store, terminal, at, data, "
            "prev_hash, hash) SELECT 3, 'forged', 'sale.opened', store, terminal, at, data, "
            "hash, hash FROM events WHERE seq = 2",
            3,
            "edited",
        ),
    ],
    ids=["edit-data", "edit-time", "delete-middle", "delete-first", "reorder", "insert"],
)
def test_tampering_is_found_and_named(
    tmp_path: Path, tamper: str, bad_seq: int, words: str
) -> None:
    path = tmp_path / "j.sqlite"
    fill(path)
    raw(path).executescript(tamper)
    verdict = verify(path)
    assert not verdict.ok
    assert verdict.seq == bad_seq
    assert words in (verdict.problem or "")

    cli = subprocess.run(
        [sys.executable, "-m", "tillbox.cli", "journal", "verify", "--db", str(path)],
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 1
    assert f"event seq {bad_seq}" in cli.stderr


def test_cli_verify_passes_an_intact_journal(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    fill(path)
    cli = subprocess.run(
        [sys.executable, "-m", "tillbox.cli", "journal", "verify", "--db", str(path)],
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 0, cli.stderr
    assert "OK, 6 events" in cli.stdout
