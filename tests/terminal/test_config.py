# terminal.toml: unknown keys and bad values stop the start naming the key; variables override.
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from terminal.config import ConfigError, hash_pin, load
from terminal.demo.run import write_config


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return write_config(tmp_path / "state", 8080)


def test_the_demo_config_loads(path: Path) -> None:
    config = load(path, environ={})
    assert (config.store_id, config.terminal_id, config.api.host) == ("demo", "t1", "127.0.0.1")
    assert config.policy().tax.classes["standard"].code == "A"


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        ('currency = "EUR"', 'currency = "EUR"\ncolour = "red"', "colour: unknown key"),
        ("port = 8080", "port = 80800", "api.port"),
        ('rate = "19"', 'rate = "190"', "tax.classes.standard.rate"),
        ('mode = "inclusive"', 'mode = "vat"', "tax.mode"),
        ('terminal_id = "t1"', 'terminal_id = "t 1/x"', "terminal_id"),
        ('timezone = "Europe/Berlin"', 'timezone = "Mars/Olympus"', "timezone"),
        ('role = "manager"', 'role = "cashier"', "at least one cashier must have role"),
        ('code = "B"', 'code = "A"', "two tax classes share a code"),
        ('name = "Mia"', 'name = "Mia"\npin = "9999"', "cashiers.2.pin: unknown key"),
    ],
)
def test_bad_config_is_refused_naming_the_key(path: Path, old: str, new: str, named: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load(path, environ={})
    assert named in str(err.value)


def test_environment_overrides_single_keys(path: Path) -> None:
    config = load(
        path,
        environ={
            "TILLBOX_API__PORT": "9090",
            "TILLBOX_STORE_ID": "s7",
            "TILLBOX_CATALOG": "",
            "HOME": "/root",
        },
    )
    assert (config.api.port, config.store_id, config.catalog) == (9090, "s7", None)
    with pytest.raises(ConfigError, match=r"api.port \(from \$TILLBOX_API__PORT\)"):
        load(path, environ={"TILLBOX_API__PORT": "many"})
    with pytest.raises(ConfigError, match=r"colour \(from \$TILLBOX_COLOUR\): unknown key"):
        load(path, environ={"TILLBOX_COLOUR": "red"})


def test_tillbox_config_names_the_file(path: Path) -> None:
    assert load(None, environ={"TILLBOX_CONFIG": str(path)}).store_id == "demo"
    with pytest.raises(ConfigError, match="no such file"):
        load(None, environ={"TILLBOX_CONFIG": str(path.parent / "missing.toml")})


def test_a_bad_config_stops_the_daemon_with_a_message(path: Path) -> None:
    path.write_text(path.read_text(encoding="utf-8") + "\n[api2]\nx = 1\n", encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "tillbox.cli", "terminal", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "api2: unknown key" in out.stderr
    assert "Traceback" not in out.stderr


def test_pin_hashes_check_and_refuse_bad_pins() -> None:
    from terminal.config import Cashier

    cashier = Cashier(id="x", name="X", pin_hash=hash_pin("4321"))
    assert cashier.check_pin("4321")
    assert not cashier.check_pin("1234")
    with pytest.raises(ConfigError, match="4 to 8 digits"):
        hash_pin("12a4")
