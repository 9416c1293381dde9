# purpose: a stand-in for RAUC's D-Bus service (de.pengutronix.rauc.Installer) on a test bus.
"""Run as `python rauc_standin.py BUS_ADDRESS SCRIPT_JSON`.

It owns `de.pengutronix.rauc` and answers on object `/` like RAUC 1.8: `InstallBundle`
replies at once, then `Progress` changes arrive as PropertiesChanged and the `Completed`
signal ends the install; `LastError`, `Operation` and `Progress` are readable properties
and `GetSlotStatus` lists an A/B pair with the booted slot's bundle version.

SCRIPT_JSON is re-read at every call, so a test can change the outcome between calls:
`{"result": 0 | 1, "error": "…", "booted_version": "1.0", "step_s": 0.02}`. Each
`InstallBundle` is appended to `<SCRIPT_JSON>.calls` as a JSON line with the bundle's path,
size and SHA-256, read while the "install" runs (the updater deletes it afterwards).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from jeepney import (  # type: ignore[import-untyped]
    DBusAddress,
    MessageType,
    new_error,
    new_method_return,
    new_signal,
)
from jeepney.bus_messages import message_bus  # type: ignore[import-untyped]
from jeepney.io.blocking import Proxy, open_dbus_connection  # type: ignore[import-untyped]

NAME = "de.pengutronix.rauc"
IFACE = "de.pengutronix.rauc.Installer"
PROPS = "org.freedesktop.DBus.Properties"
EMITTER = DBusAddress("/", interface=IFACE)
PROP_EMITTER = DBusAddress("/", interface=PROPS)


class Standin:
    def __init__(self, address: str, script: Path) -> None:
        self.script = script
        self.calls = script.with_name(script.name + ".calls")
        self.conn = open_dbus_connection(bus=address)
        self.props: dict[str, tuple[str, Any]] = {
            "Operation": ("s", "idle"),
            "LastError": ("s", ""),
            "Progress": ("(isi)", (0, "", 1)),
            "Compatible": ("s", "tillbox-test"),
            "Variant": ("s", ""),
            "BootSlot": ("s", "A"),
        }

    def plan(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.script.read_text(encoding="utf-8"))
        return doc

    def serve(self) -> None:
        reply = Proxy(message_bus, self.conn).RequestName(NAME, 4)  # DO_NOT_QUEUE
        if reply != (1,):
            raise SystemExit(f"could not own {NAME}: {reply}")
        print("ready", flush=True)
        while True:
            msg = self.conn.receive()
            if msg.header.message_type != MessageType.method_call:
                continue
            iface = msg.header.fields.get(2)  # HeaderFields.interface
            member = msg.header.fields.get(3)  # HeaderFields.member
            try:
                self.dispatch(msg, iface, member)
            except Exception as err:  # answer the caller rather than die
                self.conn.send(
                    new_error(msg, "org.freedesktop.DBus.Error.Failed", "s", (str(err),))
                )

    def dispatch(self, msg: Any, iface: str | None, member: str | None) -> None:
        if iface == PROPS and member == "Get":
            _, name = msg.body
            self.conn.send(new_method_return(msg, "v", (self.props[name],)))
        elif iface == PROPS and member == "GetAll":
            self.conn.send(new_method_return(msg, "a{sv}", (self.props,)))
        elif member == "InstallBundle":
            self.install(msg, msg.body[0])
        elif member == "GetSlotStatus":
            booted = self.plan().get("booted_version", "1.0")
            slots = [
                ("rootfs.0", {"state": ("s", "booted"), "bootname": ("s", "A"),
                              "bundle.version": ("s", booted)}),
                ("rootfs.1", {"state": ("s", "inactive"), "bootname": ("s", "B")}),
            ]  # fmt: skip
            self.conn.send(new_method_return(msg, "a(sa{sv})", (slots,)))
        else:
            self.conn.send(
                new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod", "s", (str(member),))
            )

    def changed(self, **values: tuple[str, Any]) -> None:
        self.props.update(values)
        self.conn.send(
            new_signal(PROP_EMITTER, "PropertiesChanged", "sa{sv}as", (IFACE, values, []))
        )

    def install(self, msg: Any, source: str) -> None:
        plan = self.plan()
        path = Path(source)
        data = path.read_bytes() if path.is_file() else b""
        with self.calls.open("a", encoding="utf-8") as f:
            entry = {
                "bundle": source,
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
            f.write(json.dumps(entry) + "\n")
        self.conn.send(new_method_return(msg))
        self.changed(Operation=("s", "installing"), LastError=("s", ""))
        step = float(plan.get("step_s", 0.02))
        for pct, text in ((0, "Installing"), (20, "Checking bundle"), (40, "Copying image"),
                          (80, "Copying image done"), (100, "Installing done.")):  # fmt: skip
            time.sleep(step)
            if pct == 80 and int(plan.get("result", 0)) != 0:
                break
            self.changed(Progress=("(isi)", (pct, text, 1)))
        result = int(plan.get("result", 0))
        if result != 0:
            self.changed(LastError=("s", plan.get("error", "Installation error")))
        self.changed(Operation=("s", "idle"))
        self.conn.send(new_signal(EMITTER, "Completed", "i", (result,)))


if __name__ == "__main__":
    Standin(sys.argv[1], Path(sys.argv[2])).serve()
