# A private Mosquitto on free 127.0.0.1 ports, configured from relay/mosquitto/, for demo and tests.
"""Start, stop, kill and restart a real `mosquitto` built from the shipped configuration.

The generated config is `relay/mosquitto/mosquitto.conf` with only the listener address,
certificate paths, ACL path, persistence folder and run-as user rewritten, so whatever is
tested here is what production runs. The ACL is the shipped one plus a generated block per
terminal certificate found in the CA folder (see `render_acl`).

There is one TLS listener and no plain one: every client, local tools included, connects
with a certificate from the CA folder (`DevBroker.settings`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tillbox.certs import Identity, ca_files, issued, issued_terminals, server_files

MOSQUITTO: Final = Path("/usr/sbin/mosquitto")
SHIPPED_DIR: Final = Path(__file__).resolve().parent.parent / "relay" / "mosquitto"
_SERVICE_ROLES: Final = ("relay", "operator")
_DOWN_SYNC: Final = ("catalog", "stock", "customers")


class BrokerError(RuntimeError):
    """The development broker could not be started or controlled; the message says why."""


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """Where and as whom a paho-mqtt client connects: MQTT 5 over TLS with a client certificate."""

    host: str
    port: int
    ca_file: Path
    cert_file: Path | None
    key_file: Path | None

    def ssl_context(self) -> ssl.SSLContext:
        """Verify the broker against our CA (and its name); present the client certificate."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca_file))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.cert_file is not None:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    def new_client(self, client_id: str) -> mqtt.Client:
        """A paho client (callback API 2, MQTT 5) with TLS set up; connect it to host and port."""
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
        )
        client.tls_set_context(self.ssl_context())
        return client


def die_with_parent() -> None:
    """In a child before exec: have the kernel stop it when its parent dies, even by SIGKILL."""
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def render_acl(
    terminals: Iterable[tuple[str, str]],
    services: Mapping[str, Iterable[str]] | None = None,
    shipped: Path = SHIPPED_DIR / "acl",
) -> str:
    """The shipped ACL, then one block per terminal granting reads of its store's down-sync.

    `services` maps "relay"/"operator" to identity names; a name other than the role's own
    gets a copy of the shipped `user relay` / `user operator` block.
    """
    text = shipped.read_text(encoding="utf-8")
    blocks: list[str] = []
    for role, names in (services or {}).items():
        grants = _user_block(text, role, shipped)
        blocks.extend(_block(name, grants) for name in sorted(set(names)) if name != role)
    for store, terminal in sorted(set(terminals)):
        grants = [f"topic read tillbox/v1/{store}/{kind}/#" for kind in _DOWN_SYNC]
        blocks.append(_block(f"{store}/{terminal}", grants))
    generated = "\n# --- generated from the issued certificates ---\n" if blocks else ""
    return text.rstrip("\n") + "\n" + generated + "".join(blocks)


def acl_for(certs_dir: Path, shipped: Path = SHIPPED_DIR / "acl") -> str:
    """`render_acl` for every identity issued in a CA folder."""
    services = {role: [i.name for i in issued(certs_dir, role)] for role in _SERVICE_ROLES}
    return render_acl(issued_terminals(certs_dir), services, shipped)


def _block(user: str, grants: Iterable[str]) -> str:
    return f"\nuser {user}\n" + "".join(f"{g}\n" for g in grants)


def _user_block(acl: str, user: str, source: Path) -> list[str]:
    grants: list[str] = []
    inside = False
    for raw in acl.splitlines():
        line = raw.strip()
        if line.startswith("user "):
            inside = line[5:].strip() == user
        elif inside and line.startswith("topic "):
            grants.append(line)
    if not grants:
        raise BrokerError(f"{source}: no `user {user}` block to copy")
    return grants


def render_config(shipped: str, overrides: Mapping[str, str], extra: Iterable[str] = ()) -> str:
    """Replace the value of each single-valued key in `overrides`; every key must be present."""
    out: list[str] = []
    seen: set[str] = set()
    for line in shipped.splitlines():
        stripped = line.strip()
        key = stripped.split(None, 1)[0] if stripped and not stripped.startswith("#") else ""
        if key in overrides:
            if key in seen:
                raise BrokerError(f"mosquitto.conf sets {key} twice; cannot rewrite it")
            seen.add(key)
            out.append(f"{key} {overrides[key]}")
        else:
            out.append(line)
    missing = sorted(overrides.keys() - seen)
    if missing:
        raise BrokerError(f"mosquitto.conf has no {', '.join(missing)} line to rewrite")
    out.extend(extra)
    return "\n".join(out) + "\n"


class DevBroker:
    """A private `mosquitto` process in `folder`, serving TLS with the CA in `certs_dir`.

    `port` is chosen on the first start and kept, so `restart()` comes back where clients
    expect it. Use as a context manager or call `stop()`; nothing outlives it.
    """

    def __init__(
        self,
        folder: Path,
        certs_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        binary: Path = MOSQUITTO,
        shipped: Path = SHIPPED_DIR,
    ) -> None:
        self.folder = folder
        self.certs_dir = certs_dir
        self.host = host
        self.port = port
        self.binary = binary
        self.shipped = shipped
        self.config_path = folder / "mosquitto.conf"
        self.acl_path = folder / "acl"
        self.log_path = folder / "mosquitto.log"
        self.db_path = folder / "mosquitto.db"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def ca_file(self) -> Path:
        return ca_files(self.certs_dir).cert

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc else None

    def settings(self, identity: Identity | None) -> MqttSettings:
        """Connection settings for a client presenting `identity` (None: no certificate)."""
        if not self.port:
            raise BrokerError("the broker has no port yet: start() it first")
        return MqttSettings(
            self.host,
            self.port,
            self.ca_file,
            identity.cert if identity else None,
            identity.key if identity else None,
        )

    def start(self, timeout: float = 10.0) -> None:
        """Write config and ACL, start mosquitto and wait until it accepts connections."""
        if self.running:
            raise BrokerError(f"broker already running (pid {self.pid})")
        if not self.binary.exists():
            raise BrokerError(
                f"{self.binary} not found: install Debian's mosquitto (apt-get install mosquitto)"
            )
        pick_port = not self.port
        for attempt in range(3):
            if pick_port:
                self.port = free_port(self.host)
            self._write_files()
            self._spawn()
            try:
                self._wait_ready(timeout)
                return
            except BrokerError:
                in_use = "Address already in use" in self.log_text()[-500:]
                if not (pick_port and in_use and attempt < 2):
                    raise
            # another process took the port between free_port() and bind(): try another

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (mosquitto saves its persistence file), then SIGKILL if it hangs."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._proc = None

    def kill(self) -> None:
        """SIGKILL: no goodbye to clients, no final save of the persistence file."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        self._proc = None

    def save(self, timeout: float = 10.0) -> None:
        """SIGUSR1: mosquitto writes its persistence file now, as an autosave would."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            raise BrokerError("broker is not running")
        before = self.db_path.stat().st_mtime_ns if self.db_path.exists() else None
        proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while not self.db_path.exists() or self.db_path.stat().st_mtime_ns == before:
            if time.monotonic() > deadline:
                raise BrokerError(f"broker did not save {self.db_path} within {timeout} s")
            time.sleep(0.02)

    def restart(self, *, keep_persistence: bool = True, timeout: float = 10.0) -> None:
        """Stop (if running), optionally delete the persistence file, start on the same port."""
        self.stop(timeout)
        if not keep_persistence:
            self.db_path.unlink(missing_ok=True)
        self.start(timeout)

    def reload(self, timeout: float = 10.0) -> None:
        """Regenerate the ACL from the CA folder (new terminals) and make mosquitto reread it."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            raise BrokerError("broker is not running")
        before = self.log_text().count("Reloading config.")
        self._write_files()
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while self.log_text().count("Reloading config.") <= before:
            if time.monotonic() > deadline:
                raise BrokerError(f"broker did not reload within {timeout} s")
            time.sleep(0.02)
        # The reload runs inside one pass of mosquitto's single-threaded loop; a TLS
        # handshake answered after the log line was written is answered by the new config.
        self._tls_ping(timeout)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self) -> DevBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _write_files(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        server = server_files(self.certs_dir)
        for path in (self.ca_file, server.cert, server.key):
            if not path.exists():
                raise BrokerError(
                    f"{path} missing: run `tillbox certs init --dir {self.certs_dir}` first"
                )
        overrides = {
            "listener": f"{self.port} {self.host}",
            "cafile": str(self.ca_file),
            "certfile": str(server.cert),
            "keyfile": str(server.key),
            "acl_file": str(self.acl_path),
            "persistence_location": str(self.folder),
            "log_timestamp": "true",
        }
        if os.geteuid() == 0:
            # Dropping to the `mosquitto` user would lock it out of our 0600 keys.
            overrides["user"] = "root"
        shipped = (self.shipped / "mosquitto.conf").read_text(encoding="utf-8")
        config = render_config(shipped, overrides, ["log_timestamp_format %Y-%m-%dT%H:%M:%S"])
        self.config_path.write_text(config, encoding="utf-8")
        self.acl_path.write_text(acl_for(self.certs_dir, self.shipped / "acl"), encoding="utf-8")

    def _spawn(self) -> None:
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [str(self.binary), "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
                preexec_fn=die_with_parent,
            )

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                self._proc = None
                raise BrokerError(f"mosquitto exited at start-up:\n{self.log_text()[-2000:]}")
            with contextlib.suppress(OSError):
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return
            if time.monotonic() > deadline:
                self.kill()
                raise BrokerError(
                    f"mosquitto did not listen on {self.host}:{self.port} within {timeout} s:\n"
                    f"{self.log_text()[-2000:]}"
                )
            time.sleep(0.02)

    def _tls_ping(self, timeout: float) -> None:
        """Round-trip a TLS handshake (without a client certificate) through the broker."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        with (
            socket.create_connection((self.host, self.port), timeout=timeout) as raw,
            contextlib.suppress(ssl.SSLError, ConnectionError),
            ctx.wrap_socket(raw, server_hostname=self.host) as tls,
        ):
            tls.recv(1)  # the broker answers the missing certificate with an alert
