# purpose: the SD-card layout (image/genimage.cfg): partitions, 1 MiB alignment, RAUC's slots.
from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from tests.appliance.conftest import ROOT, need

IMAGE = ROOT / "image"
MiB = 1024 * 1024


def mbr(path: Path) -> dict[int, tuple[int, int, int]]:
    """Partition number -> (type, start byte, size bytes), logical partitions included."""
    found: dict[int, tuple[int, int, int]] = {}
    with path.open("rb") as f:

        def entries(sector: int) -> list[tuple[int, int, int]]:
            f.seek(sector * 512 + 446)
            raw = f.read(64)
            rows = []
            for i in range(4):
                kind = raw[i * 16 + 4]
                start, count = struct.unpack("<II", raw[i * 16 + 8 : i * 16 + 16])
                rows.append((kind, start, count))
            return rows

        primary = entries(0)
        for n, (kind, start, count) in enumerate(primary, 1):
            if kind:
                found[n] = (kind, start * 512, count * 512)
        extended = next(start for kind, start, _ in primary if kind in (0x05, 0x0F))
        ebr, n = extended, 5
        while True:
            logical, link = entries(ebr)[:2]
            found[n] = (logical[0], (ebr + logical[1]) * 512, logical[2] * 512)
            if not link[0]:
                break
            ebr, n = extended + link[1], n + 1
    return found


def genimage(folder: Path, out: str) -> Path:
    rootfs, staging = folder / "rootfs", folder / "staging"
    subprocess.run(
        ["genimage", "--config", IMAGE / "genimage.cfg", "--rootpath", rootfs,
         "--tmppath", folder / f"tmp-{out}", "--inputpath", staging,
         "--outputpath", folder / out],
        cwd=staging, check=True, capture_output=True, timeout=120,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "E2FSPROGS_FAKE_TIME": "1795791414"},
    )  # fmt: skip
    return folder / out


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    need("genimage", "mkfs.vfat", "mcopy", "mke2fs")
    folder = tmp_path_factory.mktemp("genimage")
    (folder / "rootfs/opt/tillbox").mkdir(parents=True)
    (folder / "rootfs/opt/tillbox/marker").write_text("slot A\n")
    for sub in ("select", "boot", "boot-b", "data/rauc"):
        (folder / "staging" / sub).mkdir(parents=True)
    shutil.copy(IMAGE / "rpi/autoboot.txt", folder / "staging/select")
    for slot, sub, part in (("A", "boot", 5), ("B", "boot-b", 6)):
        cmdline = (IMAGE / "rpi/cmdline.txt").read_text()
        text = cmdline.replace("@SLOT@", slot).replace("@ROOT@", f"mmcblk0p{part}")
        (folder / "staging" / sub / "cmdline.txt").write_text(text)
    return genimage(folder, "one"), genimage(folder, "two")


def test_the_disk_has_select_boot_ab_system_ab_and_data(images: tuple[Path, Path]) -> None:
    parts = mbr(images[0] / "tillbox-sdcard.img")
    kinds = {n: kind for n, (kind, _, _) in parts.items()}
    assert kinds == {1: 0x0C, 2: 0x0C, 3: 0x0C, 4: 0x0F, 5: 0x83, 6: 0x83, 7: 0x83}
    sizes = {n: size // MiB for n, (_, _, size) in parts.items() if n != 4}
    assert sizes == {1: 32, 2: 256, 3: 256, 5: 3072, 6: 3072, 7: 1024}
    for n, (_, start, size) in parts.items():
        assert start % MiB == 0 and size % MiB == 0, f"partition {n} is not 1 MiB aligned"
    starts = [parts[n][1] for n in (1, 2, 3, 5, 6, 7)]
    assert starts == sorted(starts)


def test_rauc_slots_and_tryboot_name_the_same_partitions() -> None:
    conf = (IMAGE / "rauc/system.conf").read_text()
    slots = dict(re.findall(r"\[slot\.(\w+\.\d)\]\ndevice=/dev/mmcblk0p(\d)", conf))
    assert slots == {"boot.0": "2", "boot.1": "3", "rootfs.0": "5", "rootfs.1": "6"}
    tryboot = (IMAGE / "rauc/tryboot").read_text()
    assert "A) echo 2 ;; B) echo 3 ;;" in tryboot
    autoboot = (IMAGE / "rpi/autoboot.txt").read_text()
    assert "tryboot_a_b=1" in autoboot and "boot_partition=2" in autoboot


def test_the_fat_boot_sectors_are_reproducible(images: tuple[Path, Path]) -> None:
    # Fixed volume ids (--invariant -i); mcopy still stamps each file's creation time, so
    # whole FAT images match only within the same second (docs/appliance.md).
    for name in ("select.vfat", "boot-a.vfat", "boot-b.vfat"):
        one, two = ((folder / name).read_bytes()[:512] for folder in images)
        assert one == two, f"{name}'s boot sector differs between two builds"
    listing = subprocess.run(
        ["mdir", "-b", "-i", images[0] / "select.vfat", "::"],
        capture_output=True, text=True, check=True,
        env={"PATH": "/usr/bin:/bin", "MTOOLS_SKIP_CHECK": "1"},
    )  # fmt: skip
    assert listing.stdout.strip() == "::/autoboot.txt"
