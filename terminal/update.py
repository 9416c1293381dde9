# purpose: the fleet's `cmd/update`: wait for an idle till, download, install via RAUC, reboot.
"""One update at a time, on its own thread, never on the sale path.

    cmd/update {"id", "url", "version", "sha256"?}
      -> queued -> waiting (a sale or payment is open) -> downloading -> installing
      -> rebooting (the reboot command runs; the box comes back on the new slot)
      -> installed | rolled_back (reported by the daemon of the next boot) | failed | refused

Every step is a `cmd-result` document and the `update` object of the retained status.
The job is written to `<state_dir>/update.json` before the reboot, so the daemon that
starts afterwards can tell the fleet whether the box now runs the new version (the
mark-good service confirmed it) or came back on the old one (docs/updates.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import queue
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from jeepney import (  # type: ignore[import-untyped]
    DBusAddress,
    MatchRule,
    MessageType,
    message_bus,
    new_method_call,
)
from jeepney.io.blocking import Proxy, open_dbus_connection  # type: ignore[import-untyped]
from pydantic import Field

from tillbox.settings import SettingsError, Strict, read_toml, validate

from . import sdnotify
from .config import ConfigError

log = logging.getLogger("tillbox.update")

RAUC_NAME: Final = "de.pengutronix.rauc"
RAUC_PATH: Final = "/"
RAUC_INTERFACE: Final = "de.pengutronix.rauc.Installer"
_PROPERTIES: Final = "org.freedesktop.DBus.Properties"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+~_-]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK: Final = 1 << 16

State = Literal[
    "queued",
    "waiting",
    "downloading",
    "installing",
    "rebooting",
    "installed",
    "rolled_back",
    "failed",
    "refused",
]
FINAL: Final = frozenset({"installed", "rolled_back", "failed", "refused"})
BusyCheck = Callable[[], str | None]
Report = Callable[[dict[str, Any]], None]
StatusSink = Callable[[dict[str, Any]], None]


class UpdateError(Exception):
    """A step of the update failed; the message goes to the fleet as the result's `error`."""


class UpdateSettings(Strict):
    """`update.toml` beside `terminal.toml`: how this box installs and reboots."""

    version: Literal[1] = 1
    bus: str = Field("system", min_length=1, max_length=256)
    reboot_command: list[str] = Field(
        default_factory=lambda: ["systemctl", "start", "--no-block", "tillbox-reboot.service"],
        min_length=1,
    )
    download_dir: Path | None = None
    max_bundle_mb: int = Field(1024, ge=1, le=16384)
    download_timeout_s: float = Field(30.0, ge=1, le=600)
    install_timeout_s: float = Field(1800.0, ge=5, le=7200)
    idle_poll_s: float = Field(1.0, ge=0.05, le=60)
    resolve_timeout_s: float = Field(120.0, ge=1, le=3600)
    allow_http: bool = True


def load_settings(path: Path) -> UpdateSettings:
    """Read `update.toml`; a missing file means the appliance defaults."""
    try:
        return validate(UpdateSettings, read_toml(path, missing=None), path, "docs/updates.md")
    except SettingsError as err:
        raise ConfigError(str(err)) from err


@dataclass(frozen=True, slots=True)
class UpdateCommand:
    id: str
    url: str
    version: str
    sha256: str | None = None

    @classmethod
    def parse(cls, payload: bytes, allow_http: bool = True) -> UpdateCommand:
        """Check a `cmd/update` payload; UpdateError names what is wrong."""
        try:
            doc = json.loads(payload)
        except (ValueError, RecursionError) as err:
            raise UpdateError("the command is not JSON") from err
        if not isinstance(doc, dict):
            raise UpdateError("the command must be a JSON object")
        unknown = doc.keys() - {"id", "url", "version", "sha256"}
        if unknown:
            raise UpdateError(f"unknown field(s): {', '.join(sorted(unknown))}")
        cid, url, version = doc.get("id"), doc.get("url"), doc.get("version")
        sha = doc.get("sha256")
        if not isinstance(cid, str) or not _ID.match(cid):
            raise UpdateError("`id` must be 1-64 letters, digits, '.', '_' or '-'")
        schemes = ("https://", "http://") if allow_http else ("https://",)
        if not isinstance(url, str) or not url.startswith(schemes) or len(url) > 2048:
            raise UpdateError(f"`url` must be an {' or '.join(s[:-3] for s in schemes)} URL")
        if not isinstance(version, str) or not _VERSION.match(version):
            raise UpdateError("`version` must be 1-64 letters, digits, '.', '+', '~', '_' or '-'")
        if sha is not None and (not isinstance(sha, str) or not _SHA256.match(sha)):
            raise UpdateError("`sha256` must be 64 lower-case hex digits")
        return cls(cid, url, version, sha)


def command_id(payload: bytes) -> str | None:
    """The `id` of a command that failed to parse, if it has a usable one."""
    with contextlib.suppress(ValueError, RecursionError, AttributeError):
        cid = json.loads(payload).get("id")
        if isinstance(cid, str) and _ID.match(cid):
            return cid
    return None


def _utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True, slots=True)
class Job:
    """What the fleet sees of one update; also what `update.json` holds."""

    id: str
    version: str
    url: str
    state: State = "queued"
    progress: int | None = None
    message: str | None = None
    error: str | None = None
    at: str = ""
    sha256: str | None = None

    @property
    def final(self) -> bool:
        return self.state in FINAL

    def result(self) -> dict[str, Any]:
        """The `cmd-result` document."""
        doc: dict[str, Any] = {
            "id": self.id,
            "ok": self.state not in ("failed", "refused", "rolled_back"),
            "command": "update",
            "state": self.state,
            "version": self.version,
            "final": self.final,
            "at": self.at,
        }
        for key in ("progress", "message", "error"):
            value = getattr(self, key)
            if value is not None:
                doc[key] = value
        return doc

    def status(self) -> dict[str, Any]:
        """The `update` object of the retained status."""
        return {
            k: v
            for k, v in self.result().items()
            if k in ("id", "state", "version", "progress", "message", "error", "at")
        }


class Rauc:
    """The few calls of RAUC's `de.pengutronix.rauc.Installer` interface we use (blocking)."""

    def __init__(self, bus: str) -> None:
        self.bus = {"system": "SYSTEM", "session": "SESSION"}.get(bus, bus)
        self.installer = DBusAddress(RAUC_PATH, bus_name=RAUC_NAME, interface=RAUC_INTERFACE)

    def _connect(self) -> Any:
        try:
            return open_dbus_connection(bus=self.bus)
        except (OSError, ValueError, KeyError) as err:
            raise UpdateError(f"cannot reach D-Bus ({self.bus}): {err}") from err

    def _call(self, conn: Any, msg: Any, timeout: float = 30.0) -> Any:
        try:
            reply = conn.send_and_get_reply(msg, timeout=timeout)
        except (OSError, TimeoutError) as err:
            raise UpdateError(f"RAUC did not answer: {err}") from err
        if reply.header.message_type == MessageType.error:
            name = reply.header.fields.get(4, "error")  # HeaderFields.error_name
            text = reply.body[0] if reply.body else ""
            raise UpdateError(f"RAUC refused: {name}: {text}".rstrip(": "))
        return reply.body

    def _property(self, conn: Any, name: str) -> Any:
        props = DBusAddress(RAUC_PATH, bus_name=RAUC_NAME, interface=_PROPERTIES)
        body = self._call(conn, new_method_call(props, "Get", "ss", (RAUC_INTERFACE, name)))
        return body[0][1]  # a variant is (signature, value)

    def install(
        self,
        bundle: Path,
        on_progress: Callable[[int, str], None],
        timeout: float,
        stop: threading.Event,
    ) -> None:
        """InstallBundle, then follow `Progress` until `Completed`; UpdateError on failure."""
        conn = self._connect()
        try:
            completed = MatchRule(
                type="signal", interface=RAUC_INTERFACE, member="Completed", path=RAUC_PATH
            )
            changed = MatchRule(
                type="signal", interface=_PROPERTIES, member="PropertiesChanged", path=RAUC_PATH
            )
            bus = Proxy(message_bus, conn, timeout=10)
            for rule in (completed, changed):
                bus.AddMatch(rule)
            with (
                conn.filter(completed, bufsize=4) as done,
                conn.filter(changed, queue=deque(maxlen=256)) as changes,
            ):
                call = new_method_call(self.installer, "InstallBundle", "sa{sv}", (str(bundle), {}))
                self._call(conn, call)
                deadline = time.monotonic() + timeout
                while not done:
                    if stop.is_set():
                        raise UpdateError("the daemon is stopping; RAUC goes on installing")
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise UpdateError(f"RAUC did not complete within {timeout:.0f} s")
                    with contextlib.suppress(TimeoutError):
                        conn.recv_messages(timeout=min(left, 1.0))
                    while changes:
                        _, props, _ = changes.popleft().body
                        if "Progress" in props:
                            percent, text, _depth = props["Progress"][1]
                            on_progress(int(percent), str(text))
                result = int(done.popleft().body[0])
                if result != 0:
                    error = str(self._property(conn, "LastError") or f"result {result}")
                    raise UpdateError(f"RAUC could not install the bundle: {error}")
        finally:
            conn.close()

    def booted_version(self) -> str | None:
        """The bundle version RAUC recorded for the slot the box booted from."""
        conn = self._connect()
        try:
            body = self._call(conn, new_method_call(self.installer, "GetSlotStatus"))
        finally:
            conn.close()
        for _name, status in body[0]:
            values = {k: v[1] for k, v in status.items()}
            if values.get("state") == "booted":
                version = values.get("bundle.version")
                return str(version) if version is not None else None
        return None


class Updater:
    """Takes `cmd/update` payloads from the uplink thread and runs them on its own thread."""

    def __init__(
        self,
        settings: UpdateSettings,
        state_dir: Path,
        report: Report,
        status: StatusSink,
        busy: list[BusyCheck] | None = None,
    ) -> None:
        self.settings = settings
        self.record_path = state_dir / "update.json"
        self.download_dir = settings.download_dir or state_dir / "updates"
        self.rauc = Rauc(settings.bus)
        self._report = report
        self._status = status
        self._busy: list[BusyCheck] = list(busy or [])
        self._queue: queue.Queue[UpdateCommand] = queue.Queue()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.job: Job | None = self._load()

    # -- the uplink's side -------------------------------------------------------------

    def add_busy_check(self, check: BusyCheck) -> None:
        """`check()` returns why the till cannot be interrupted now (e.g. "a card payment is
        open"), or None. The update waits until every check says None."""
        self._busy.append(check)

    def submit(self, payload: bytes) -> None:
        """A `cmd/update` message arrived; returns at once."""
        try:
            cmd = UpdateCommand.parse(payload, self.settings.allow_http)
        except UpdateError as err:
            cid = command_id(payload)
            log.warning("refused an update command (id %s): %s", cid, err)
            if cid is not None:
                refused = Job(cid, "", "", "refused", error=str(err), at=_utcnow())
                self._report(refused.result())
            return
        with self._lock:
            current = self.job
            if current is not None and current.id == cmd.id:
                if current.final:
                    self._report(current.result())  # a repeated command gets the same answer
                return  # a QoS 1 duplicate of the job in hand
            if current is not None and not current.final:
                refused = Job(
                    cmd.id,
                    cmd.version,
                    cmd.url,
                    "refused",
                    error=f"update {current.id} ({current.version}) is {current.state}; "
                    "send this one again when it is finished",
                    at=_utcnow(),
                )
                self._report(refused.result())
                return
            self._set(Job(cmd.id, cmd.version, cmd.url, sha256=cmd.sha256))
            assert self.job is not None
            self._report(self.job.result())
        self._queue.put(cmd)

    def view(self) -> dict[str, Any] | None:
        with self._lock:
            return None if self.job is None else self.job.status()

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="tillbox-update", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        job = self.job
        if job is not None:
            self._status(job.status())
            if job.state == "rebooting":
                self._resolve(job)
            elif not job.final:
                # The daemon stopped mid-update (a crash, a power cut): start it over.
                log.info("resuming update %s (%s) after a restart", job.id, job.version)
                self._set(replace(job, state="queued", progress=None, message="resumed"))
                self._report_job()
                self._queue.put(UpdateCommand(job.id, job.url, job.version, job.sha256))
        while not self._stop.is_set():
            try:
                cmd = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self._update(cmd)
            except UpdateError as err:
                if self._stop.is_set():
                    # Shutdown, not failure: update.json keeps the step, the next start resumes.
                    log.info("update %s interrupted by shutdown: %s", cmd.id, err)
                    return
                log.error("update %s (%s) failed: %s", cmd.id, cmd.version, err)
                self._step("failed", error=str(err), progress=None)
            except Exception as err:  # the thread must survive anything a bundle can cause
                log.exception("update %s crashed", cmd.id)
                self._step("failed", error=f"internal error: {err!r}", progress=None)

    # -- one update --------------------------------------------------------------------

    def _update(self, cmd: UpdateCommand) -> None:
        self._wait_idle()
        bundle = self._download(cmd)
        try:
            self._step("installing", progress=0, message="starting")
            self.rauc.install(
                bundle,
                lambda pct, text: self._step("installing", progress=pct, message=text),
                self.settings.install_timeout_s,
                self._stop,
            )
        finally:
            bundle.unlink(missing_ok=True)
        self._wait_idle()  # a sale may have started during the install: never cut it off
        self._step("rebooting", progress=None, message="installed; rebooting into it")
        self._reboot()

    def _wait_idle(self) -> None:
        said: str | None = None
        while True:
            reason = next((r for r in (check() for check in self._busy) if r), None)
            if reason is None:
                return
            if reason != said:
                log.info("update waits: %s", reason)
                self._step("waiting", message=reason, progress=None)
                said = reason
            if self._stop.wait(self.settings.idle_poll_s):
                raise UpdateError("the daemon is stopping")

    def _download(self, cmd: UpdateCommand) -> Path:
        self.download_dir.mkdir(parents=True, exist_ok=True)
        target = self.download_dir / f"{cmd.id}.raucb"
        part = target.with_suffix(".part")
        limit = self.settings.max_bundle_mb * 1024 * 1024
        self._step("downloading", progress=0, message=None)
        digest = hashlib.sha256()
        try:
            with (
                urllib.request.urlopen(cmd.url, timeout=self.settings.download_timeout_s) as resp,
                open(part, "wb") as out,
            ):
                size = int(resp.headers.get("Content-Length") or 0)
                if size > limit:
                    raise UpdateError(f"the bundle is {size} bytes, above max_bundle_mb")
                got, shown = 0, 0
                while chunk := resp.read(_CHUNK):
                    if self._stop.is_set():
                        raise UpdateError("the daemon is stopping")
                    got += len(chunk)
                    if got > limit:
                        raise UpdateError("the bundle is larger than max_bundle_mb")
                    digest.update(chunk)
                    out.write(chunk)
                    percent = got * 100 // size if size else 0
                    if percent >= shown + 10:
                        shown = percent - percent % 10
                        self._step("downloading", progress=shown)
                out.flush()
                os.fsync(out.fileno())
        except (urllib.error.URLError, OSError, ValueError) as err:
            part.unlink(missing_ok=True)
            raise UpdateError(f"download of {cmd.url} failed: {err}") from err
        except UpdateError:
            part.unlink(missing_ok=True)
            raise
        if cmd.sha256 is not None and digest.hexdigest() != cmd.sha256:
            part.unlink(missing_ok=True)
            raise UpdateError(
                f"the bundle's SHA-256 is {digest.hexdigest()}, the command said {cmd.sha256}"
            )
        part.replace(target)
        return target

    def _reboot(self) -> None:
        command = self.settings.reboot_command
        log.warning("rebooting for update: %s", " ".join(command))
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise UpdateError(f"the reboot command failed: {err}") from err
        if done.returncode != 0:
            raise UpdateError(
                f"the reboot command exited {done.returncode}: {done.stderr.strip()[-300:]}; "
                "the update is installed and takes effect at the next reboot"
            )

    def _resolve(self, job: Job) -> None:
        """After the reboot: did the box come up on the new version, or fall back?"""
        deadline = time.monotonic() + self.settings.resolve_timeout_s
        while not self._stop.is_set():
            try:
                booted = self.rauc.booted_version()
                break
            except UpdateError as err:
                if time.monotonic() > deadline:
                    log.warning("cannot ask RAUC which version booted (%s); asking next start", err)
                    return
                self._stop.wait(2.0)
        else:
            return
        if booted == job.version:
            log.info("update %s: running version %s", job.id, job.version)
            self._set(replace(job, state="installed", progress=None, message=None, at=_utcnow()))
        else:
            self._set(
                replace(
                    job,
                    state="rolled_back",
                    progress=None,
                    message=None,
                    error=f"the box runs version {booted or 'unknown'}, not {job.version}: the "
                    "new slot did not come up healthy, so the previous one booted",
                    at=_utcnow(),
                )
            )
        self._report_job()

    # -- state -------------------------------------------------------------------------

    def _step(self, state: State, **changes: Any) -> None:
        with self._lock:
            assert self.job is not None
            self._set(replace(self.job, state=state, at=_utcnow(), **changes))
        self._report_job()

    def _report_job(self) -> None:
        with self._lock:
            job = self.job
        if job is not None:
            self._report(job.result())

    def _set(self, job: Job) -> None:
        """Keep, persist and show a job state (the caller reports it if it should)."""
        if not job.at:
            job = replace(job, at=_utcnow())
        self.job = job
        self._save(job)
        self._status(job.status())
        progress = f" {job.progress}%" if job.progress is not None else ""
        sdnotify.status(f"update {job.version}: {job.state}{progress}")

    def _save(self, job: Job) -> None:
        doc = {
            "id": job.id,
            "version": job.version,
            "url": job.url,
            "state": job.state,
            "error": job.error,
            "at": job.at,
            "sha256": job.sha256,
        }
        tmp = self.record_path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(doc), encoding="utf-8")
            tmp.replace(self.record_path)
        except OSError as err:
            log.error("cannot write %s: %s", self.record_path, err)

    def _load(self) -> Job | None:
        try:
            doc = json.loads(self.record_path.read_text(encoding="utf-8"))
            return Job(
                doc["id"],
                doc["version"],
                doc["url"],
                doc["state"],
                error=doc["error"],
                at=doc["at"],
                sha256=doc.get("sha256"),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.error("ignoring %s: %s", self.record_path, err)
            return None
