# relay.toml refused naming the key, env overrides, every key documented; `tillbox relay status`.
from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel

from relay.config import ConfigError, RelayConfig, load
from relay.store import Inbound, Store
from tests.relay.plainbroker import chain, encode
from tillbox.cli import main
from tillbox.contract import events_topic

DOC = Path(__file__).parents[2] / "docs" / "relay.md"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "relay.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_and_a_full_file(tmp_path: Path) -> None:
    assert load(write(tmp_path, ""), environ={}).database.url == (
        "sqlite:////var/lib/tillbox/relay.sqlite"
    )
    ca = tmp_path / "ca.crt"
    ca.write_text("x")
    config = load(
        write(
            tmp_path,
            f"""version = 1
[broker]
host = "mqtt.example.org"
client_id = "relay-1"
ca_file = "{ca}"
[database]
url = "postgresql+psycopg://relay@db/relay"
[ingest]
batch_size = 1000
max_batch_delay_ms = 50
[log]
level = "debug"
""",
        ),
        environ={},
    )
    assert config.broker is not None and config.broker.effective_port == 8883
    assert config.ingest.batch_size == 1000 and config.log.level == "DEBUG"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[broker]\nprot = 1883\n", "broker.prot: unknown key"),
        ("[ingest]\nbatch_size = 0\n", "ingest.batch_size: Input should be greater than or equal"),
        ("[broker]\nport = 70000\n", "broker.port: Input should be less than or equal to 65535"),
        ('[database]\nurl = "mysql://x"\n', "database.url: Value error, use sqlite:////"),
        ('[log]\nlevel = "loud"\n', "log.level: Input should be"),
        ("version = 2\n", "version: Input should be 1"),
        ('[broker]\ncert_file = "/x"\n', "cert_file and broker.key_file go together"),
        (
            '[broker]\nca_file = "/nonexistent/ca.crt"\n',
            "broker.ca_file: /nonexistent/ca.crt is not",
        ),
        ("[broker\n", "not valid TOML"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load(write(tmp_path, text), environ={})


def test_environment_overrides_single_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "[broker]\nport = 1883\n")
    config = load(
        path,
        environ={
            "TILLBOX_RELAY_BROKER__PORT": "2883",
            "TILLBOX_RELAY_DATABASE__URL": "sqlite:////tmp/x.sqlite",
            "TILLBOX_RELAY_INGEST__BATCH_SIZE": "64",
            "TILLBOX_API__PORT": "1",  # the terminal's, not ours
        },
    )
    assert config.broker is not None and config.broker.port == 2883
    assert config.database.url == "sqlite:////tmp/x.sqlite" and config.ingest.batch_size == 64
    with pytest.raises(ConfigError, match=re.escape("ingest.batch_sise: unknown key")):
        load(path, environ={"TILLBOX_RELAY_INGEST__BATCH_SISE": "64"})


def test_missing_named_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load(tmp_path / "nope.toml", environ={})


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    out: list[str] = []
    for name, field in model.model_fields.items():
        kind = field.annotation
        nested = [a for a in getattr(kind, "__args__", (kind,)) if isinstance(a, type)]
        sub = [a for a in nested if issubclass(a, BaseModel)]
        if sub:
            out += _keys(sub[0], f"{prefix}{name}.")
        else:
            out.append(f"{prefix}{name}")
    return out


def test_every_config_key_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    keys = _keys(RelayConfig)
    assert "broker.receive_maximum" in keys and "ingest.batch_size" in keys
    missing = [k for k in keys if f"`{k}`" not in text]
    assert not missing, f"docs/relay.md does not describe {missing}"


def test_status_shows_heads_pending_alerts_and_dead_letters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'relay.sqlite'}"
    config = write(tmp_path, f'[database]\nurl = "{url}"\n')
    assert main(["relay", "status", "--config", str(config)]) == 2
    assert "no relay database at" in capsys.readouterr().err
    store = Store(url)
    e1, _e2, e3 = chain("s1", "t1", 3)
    store.ingest(
        [
            Inbound(events_topic("s1", "t1"), encode(e1)),
            Inbound(events_topic("s1", "t1"), encode(e3)),
            Inbound(events_topic("s1", "t2"), b"garbage"),
        ]
    )
    assert main(["relay", "status", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"s1/t1\s+1\s+1\s", out), out
    assert "open alerts: 0" in out and "dead letters: 1" in out
    store.check_gaps(timedelta(0))
    store.close()
    assert main(["relay", "status", "--config", str(config)]) == 1  # open alerts: exit 1
    out = capsys.readouterr().out
    assert re.search(r"#1 s1/t1 gap since .*: seq 2 missing", out), out
    assert main(["relay", "resolve", "1", "--config", str(config)]) == 0
    assert main(["relay", "resolve", "1", "--config", str(config)]) == 1
    assert main(["relay", "status", "--config", str(config)]) == 0
