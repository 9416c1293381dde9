# Connector tables and mapping files: refused by key name, secrets never printed.
from __future__ import annotations

from pathlib import Path

import pytest

from relay.config import ConfigError, load
from relay.connectors.base import MissingMapping
from relay.connectors.mapping import MappingError, parse
from tillbox.cli import main

from .conftest import XERO_MAPPING
from .helpers import write_config

XERO = {"kind": "xero", "client_id": "c", "client_secret": "very-secret-value", "tenant_id": "t"}


def test_a_connector_table_is_checked_by_its_kind(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    with pytest.raises(ConfigError, match=r"connectors\.xero\.tennant_id: unknown key"):
        load(write_config(tmp_path / "a.toml", url, {"xero": {**XERO, "tennant_id": "x"}}), {})
    with pytest.raises(
        ConfigError, match=r"connectors\.xero\.max_concurrent: .*less than or equal"
    ):
        load(write_config(tmp_path / "b.toml", url, {"xero": {**XERO, "max_concurrent": 99}}), {})
    with pytest.raises(ConfigError, match=r"connectors\.x\.kind: unknown connector kind 'sage'"):
        load(write_config(tmp_path / "c.toml", url, {"x": {"kind": "sage"}}), {})
    with pytest.raises(ConfigError, match=r"connectors\.ledger: a connector name"):
        load(write_config(tmp_path / "d.toml", url, {"ledger": {"kind": "beancount"}}), {})
    with pytest.raises(ConfigError, match=r"ledger\.timezone: .*IANA"):
        path = write_config(tmp_path / "e.toml", url, timezone="Mars/Olympus")
        load(path, {})
    ok = load(
        write_config(tmp_path / "f.toml", url, {"xero": XERO}),
        {"TILLBOX_RELAY_CONNECTORS__XERO__CLIENT_SECRET": "from-env"},
    )
    assert ok.connectors["xero"]["client_secret"] == "from-env"


def test_status_never_prints_a_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    path = write_config(tmp_path / "relay.toml", url, {"xero": {**XERO, "mapping": "/nope"}})
    from relay.store import Store

    Store(url).close()
    main(["relay", "connectors", "status", "-v", "--config", str(path)])
    out = capsys.readouterr().out
    assert '"client_secret": "******"' in out and "very-secret-value" not in out


def test_mapping_files_are_validated_by_key() -> None:
    text = XERO_MAPPING.read_text(encoding="utf-8")
    m = parse(text, "m.toml")
    assert m.tax("19.00") == "OUTPUT2" and m.tender("card") == "613"
    with pytest.raises(MissingMapping, match=r"tender 'voucher' has no clearing account"):
        m.tender("voucher")
    with pytest.raises(MissingMapping, match=r"SKU 'X-1' has no item code"):
        m.item("X-1")
    with pytest.raises(MappingError, match="version: this relay reads mapping format 1"):
        parse(text.replace("version = 1", "version = 2"), "m.toml")
    with pytest.raises(MappingError, match=r"accounts\.sale: unknown key"):
        parse(text.replace("sales = ", "sale = "), "m.toml")
    with pytest.raises(MappingError, match=r"'19\.0': the rate 19 is mapped twice"):
        parse(text.replace('"7" = "OUTPUT"', '"19.0" = "OUTPUT"'), "m.toml")
    with pytest.raises(MappingError, match=r"stores: .*'a/b': a store id"):
        parse(text + '\n[stores."a/b"]\ntracking = "x"\n', "m.toml")
    changed = parse(text.replace('"200"', '"201"'), "m.toml")
    assert changed.digest != m.digest


def test_mapping_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["relay", "mapping", "check", str(XERO_MAPPING)]) == 0
    assert "revision test-1: 2 tender(s), 3 tax rate(s)" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text('version = 1\n[tenders]\ncash = ""\n', encoding="utf-8")
    assert main(["relay", "mapping", "check", str(bad)]) == 2
    assert "tenders: Value error, cash: a remote code" in capsys.readouterr().err
