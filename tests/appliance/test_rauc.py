# purpose: dev-CA bundles verify, tampered or foreign ones are refused; the tryboot backend's logic.
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.appliance.conftest import ROOT, need

DEV_CA = ROOT / "image" / "dev-ca.sh"
TRYBOOT = ROOT / "image" / "rauc" / "tryboot"


def run(*cmd: str | Path, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120, **kw)  # type: ignore[call-overload]


@pytest.fixture(scope="module")
def cas(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    need("openssl", "rauc", "mksquashfs")
    base = tmp_path_factory.mktemp("cas")
    made = {}
    for name in ("fleet", "stranger"):
        done = run(DEV_CA, base / name, f"Tillbox {name}")
        assert done.returncode == 0, done.stderr
        made[name] = base / name
    return made


def bundle(folder: Path, ca: Path, version: str = "2.0.0") -> Path:
    content = folder / f"content-{version}"
    content.mkdir(parents=True)
    (content / "rootfs.tar").write_bytes(os.urandom(64 * 1024))
    (content / "manifest.raucm").write_text(
        f"[update]\ncompatible=tillbox-test\nversion={version}\n\n"
        "[bundle]\nformat=plain\n\n[image.rootfs]\nfilename=rootfs.tar\n"
    )
    out = folder / f"tillbox-{version}.raucb"
    done = run(
        "rauc",
        "bundle",
        f"--cert={ca / 'signing.cert.pem'}",
        f"--key={ca / 'signing.key.pem'}",
        f"--keyring={ca / 'ca.cert.pem'}",
        content,
        out,
    )
    assert done.returncode == 0, done.stderr
    return out


def info(path: Path, keyring: Path) -> subprocess.CompletedProcess[str]:
    return run("rauc", "info", "--output-format=shell", f"--keyring={keyring}", path)


def test_dev_ca_makes_a_ca_and_a_code_signing_certificate(cas: dict[str, Path]) -> None:
    ca = cas["fleet"]
    assert oct(ca.stat().st_mode & 0o777) == "0o700"
    assert oct((ca / "signing.key.pem").stat().st_mode & 0o777) == "0o600"
    text = run("openssl", "x509", "-noout", "-text", "-in", ca / "signing.cert.pem").stdout
    assert "Code Signing" in text and "CA:FALSE" in text
    done = run(
        "openssl", "verify", "-CAfile", ca / "ca.cert.pem", "-purpose", "any",
        ca / "signing.cert.pem",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    again = run(DEV_CA, ca)
    assert again.returncode != 0 and "already holds a CA" in again.stderr


def test_a_bundle_signed_by_the_fleet_ca_verifies(tmp_path: Path, cas: dict[str, Path]) -> None:
    path = bundle(tmp_path, cas["fleet"])
    done = info(path, cas["fleet"] / "ca.cert.pem")
    assert done.returncode == 0, done.stderr
    assert "RAUC_MF_VERSION='2.0.0'" in done.stdout
    assert "RAUC_MF_COMPATIBLE='tillbox-test'" in done.stdout


def test_a_tampered_bundle_is_refused(tmp_path: Path, cas: dict[str, Path]) -> None:
    path = bundle(tmp_path, cas["fleet"])
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x01  # one bit inside the squashfs payload
    path.write_bytes(bytes(data))
    done = info(path, cas["fleet"] / "ca.cert.pem")
    assert done.returncode != 0
    assert "signature verification failed" in done.stderr


def test_a_bundle_signed_by_another_ca_is_refused(tmp_path: Path, cas: dict[str, Path]) -> None:
    path = bundle(tmp_path, cas["stranger"])
    done = info(path, cas["fleet"] / "ca.cert.pem")
    assert done.returncode != 0
    assert "unable to get local issuer certificate" in done.stderr
    assert info(path, cas["stranger"] / "ca.cert.pem").returncode == 0


def test_the_device_config_refuses_plain_bundles() -> None:
    conf = (ROOT / "image" / "rauc" / "system.conf").read_text()
    assert "bundle-formats=-plain" in conf and "check-purpose=codesign" in conf
    assert "bootloader-custom-backend=/usr/lib/tillbox/rauc-tryboot" in conf


# -- the tryboot backend ---------------------------------------------------------------


class Pi:
    """The backend's world: partition 1, the firmware's device-tree flags, /run, reboots."""

    def __init__(self, folder: Path) -> None:
        self.select = folder / "select"
        self.dt = folder / "dt"
        self.run_dir = folder / "run"
        self.reboots = folder / "reboots"
        self.fake_reboot = folder / "fake-reboot"
        self.fake_reboot.write_text(f'#!/bin/sh\necho "reboot $*" >> {self.reboots}\n')
        self.fake_reboot.chmod(0o755)
        for d in (self.select, self.dt):
            d.mkdir()
        (self.select / "autoboot.txt").write_text(
            (ROOT / "image" / "rpi" / "autoboot.txt").read_text()
        )
        self.boot(partition=2, tryboot=False)

    def boot(self, partition: int, tryboot: bool) -> None:
        """What the firmware tells Linux after a (re)boot; /run is empty again."""
        (self.dt / "partition").write_bytes(partition.to_bytes(4, "big"))
        (self.dt / "tryboot").write_bytes(int(tryboot).to_bytes(4, "big"))
        if self.run_dir.exists():
            for f in self.run_dir.iterdir():
                f.unlink()

    def call(self, *args: str) -> str:
        env = {
            "PATH": os.environ["PATH"],
            "TRYBOOT_SELECT": str(self.select),
            "TRYBOOT_DT": str(self.dt),
            "TRYBOOT_RUN": str(self.run_dir),
            "TRYBOOT_REBOOT": str(self.fake_reboot),
        }
        done = run("sh", TRYBOOT, *args, env=env)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def autoboot(self) -> tuple[str, str]:
        text = (self.select / "autoboot.txt").read_text()
        part = text.split("[tryboot]")
        return part[0].rsplit("boot_partition=", 1)[1].strip(), part[1].split("=", 1)[1].strip()


def test_tryboot_update_then_commit(tmp_path: Path) -> None:
    pi = Pi(tmp_path)
    assert pi.call("get-primary") == "A"
    pi.call("set-primary", "B")  # what RAUC does after writing slot B
    assert pi.call("get-primary") == "B"
    assert pi.autoboot() == ("2", "3")  # committed A, try B
    pi.call("reboot")
    assert pi.reboots.read_text().split("\n")[0].endswith("0 tryboot")
    pi.boot(partition=3, tryboot=True)
    assert pi.call("get-primary") == "A"  # not committed yet
    pi.call("set-state", "B", "good")  # rauc status mark-good on the healthy box
    assert pi.autoboot() == ("3", "2")
    assert pi.call("get-primary") == "B"
    pi.call("rollback")  # a later failed health check on a committed slot changes nothing
    assert len(pi.reboots.read_text().splitlines()) == 1


def test_tryboot_failed_trial_falls_back(tmp_path: Path) -> None:
    pi = Pi(tmp_path)
    pi.call("set-primary", "B")
    pi.call("reboot")
    pi.boot(partition=3, tryboot=True)
    pi.call("rollback")  # the health check failed: tillbox-rollback.service
    assert pi.call("get-state", "B") == "bad"
    assert pi.reboots.read_text().splitlines()[-1].strip() == "reboot"  # a plain reboot
    pi.boot(partition=2, tryboot=False)  # the firmware boots the committed slot
    assert pi.call("get-primary") == "A" and pi.autoboot() == ("2", "3")


def test_tryboot_power_cut_before_reboot_stays_on_the_old_slot(tmp_path: Path) -> None:
    pi = Pi(tmp_path)
    pi.call("set-primary", "B")
    pi.boot(partition=2, tryboot=False)  # power cut: no tryboot flag, /run forgotten
    assert pi.call("get-primary") == "A"
    pi.call("reboot")
    assert pi.reboots.read_text().strip() == "reboot"
