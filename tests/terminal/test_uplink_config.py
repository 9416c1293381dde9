# purpose: the [uplink] config section's checks and the reconnect backoff's growth and jitter.
from __future__ import annotations

import random
from pathlib import Path

import pytest

from terminal.config import ConfigError, TerminalConfig, load
from terminal.demo.run import free_port, write_config
from terminal.uplink import Backoff


def config_with(
    tmp_path: Path, section: str, environ: dict[str, str] | None = None
) -> TerminalConfig:
    path = write_config(tmp_path / "state", free_port())
    with path.open("a", encoding="utf-8") as f:
        f.write("\n[uplink]\n" + section + "\n")
    return load(path, environ=environ or {})


def test_the_uplink_is_off_by_default_and_names_itself_after_the_terminal(
    tmp_path: Path,
) -> None:
    config = load(write_config(tmp_path / "state", free_port()), environ={})
    assert config.uplink.enabled is False
    assert config.client_id == "demo-t1"
    assert config.cache_path == config.state_dir / "cache.sqlite"


def test_tls_needs_the_ca_and_a_client_certificate(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tls is on, so set ca, cert, key"):
        config_with(tmp_path, "enabled = true")
    plain = config_with(tmp_path, 'enabled = true\ntls = false\nclient_id = "shop-7"')
    assert plain.uplink.tls is False
    assert plain.client_id == "shop-7"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("backoff_min_s = 5\nbackoff_max_s = 1", "backoff_max_s must not be below"),
        ("window = 0", "uplink.window"),
        ("unacked_max = 0", "uplink.unacked_max"),
        ("unacked_max = 100001", "uplink.unacked_max"),
        ("window = 50\nunacked_max = 20", "unacked_max must not be below uplink.window"),
        ("port = 70000", "uplink.port"),
        ("ack_timout_s = 3", "uplink.ack_timout_s: unknown key"),
        ('client_id = "a/b"', "uplink.client_id"),
    ],
)
def test_bad_uplink_values_stop_the_start(tmp_path: Path, section: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_with(tmp_path, section)


def test_an_environment_variable_sets_one_uplink_key(tmp_path: Path) -> None:
    config = config_with(tmp_path, "window = 5", {"TILLBOX_UPLINK__WINDOW": "7"})
    assert config.uplink.window == 7


def test_backoff_grows_stays_in_bounds_and_differs_between_terminals() -> None:
    fleet = [Backoff(1.0, 60.0, random.Random(seed)) for seed in range(50)]
    first = [b.next() for b in fleet]
    assert all(1.0 <= d <= 2.0 for d in first)
    assert len({round(d, 3) for d in first}) > 40, "terminals would reconnect in lockstep"
    later = [[b.next() for _ in range(10)][-1] for b in fleet]
    assert all(1.0 <= d <= 60.0 for d in later)
    assert sum(later) / len(later) > 10 * sum(first) / len(first)
    fleet[0].reset()
    assert fleet[0].next() <= 2.0
