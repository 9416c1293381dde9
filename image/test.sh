#!/bin/bash
# purpose: the slow appliance check: build rootfs + bundle, boot it in nspawn, rauc-install into loop slots.
# Usage: image/test.sh [--reuse]     (as root; --reuse skips the build if OUT has one;
#   SKIP_BOOT=1 skips the container boot and checks only the RAUC install)
# Not part of ./scripts/test: about 15 minutes (arm64 under qemu-user), most of it the build. Needs the
# packages listed in image/build.sh plus systemd-container; docs/appliance.md has the numbers.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
export OUT=${OUT:-$here/build/test}
export BOARD=none KIOSK=0 FORMAT=plain COMPATIBLE=tillbox-test
export ZSTD_LEVEL=${ZSTD_LEVEL:-3}  # the test's bundle only travels to a loop device
work=$(mktemp -d /tmp/tillbox-image-test.XXXXXX)
pids=()
loops=()

cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    mountpoint -q "$work/mnt" && umount "$work/mnt"
    for loop in "${loops[@]}"; do losetup -d "$loop" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n== %s (%ss)\n' "$*" "$SECONDS" >&2; }
fail() { echo "image/test.sh: FAILED: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "run as root (mmdebstrap, nspawn and loop devices need it)"
for tool in mmdebstrap systemd-nspawn rauc dbus-daemon losetup mkfs.ext4 zstd; do
    command -v "$tool" >/dev/null || fail "$tool missing (docs/appliance.md lists the packages)"
done
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    update-binfmts --enable qemu-aarch64 || fail "cannot register qemu-aarch64 with binfmt_misc"
fi

if [ "${1:-}" != --reuse ] || [ ! -e "$OUT/tillbox.raucb" ]; then
    step "build rootfs and bundle"
    start=$SECONDS
    "$here/build.sh" rootfs bundle
    echo "build: $((SECONDS - start)) s" | tee "$OUT/build-time.txt"
fi
du -sh --apparent-size "$OUT/rootfs" "$OUT/rootfs.tar" "$(readlink -f "$OUT/tillbox.raucb")" \
    | tee "$OUT/sizes.txt"

# -- 1. boot the root filesystem in a container ------------------------------------------
if [ "${SKIP_BOOT:-0}" != 1 ]; then
step "boot the rootfs with systemd-nspawn"
root=$work/root
cp -a "$OUT/rootfs" "$root"
PYTHONPATH=$src "${PYTHON:-$src/.venv/bin/python}" - "$root" <<'PY'
import re, sys
from pathlib import Path
from terminal.demo.run import write_config
root = Path(sys.argv[1])
text = write_config(root / "tmp/demo", 8080).read_text()
text = re.sub(r'^state_dir = .*$', 'state_dir = "/var/lib/tillbox"', text, flags=re.M)
(root / "etc/tillbox/terminal.toml").write_text(text)
PY
chgrp --reference="$root/etc/tillbox" "$root/etc/tillbox/terminal.toml"
chmod 0640 "$root/etc/tillbox/terminal.toml"
rm -rf "$root/tmp/demo"
# A probe that reports from inside and powers the container off. The mark-good unit needs
# real RAUC slots, which a container lacks: part 2 below covers it.
mkdir -p "$work/result"
cat > "$root/etc/systemd/system/tillbox-probe.service" <<'UNIT'
[Unit]
After=tillbox-terminal.service
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'for i in $(seq 90); do systemctl is-active -q tillbox-terminal.service && break; sleep 1; done; sleep 5; systemctl is-active tillbox-terminal.service > /result/active; systemctl --failed --plain --no-legend > /result/failed; systemctl status --no-pager tillbox-terminal.service > /result/status 2>&1; curl -s http://127.0.0.1:8080/healthz > /result/healthz; systemctl poweroff'
[Install]
WantedBy=multi-user.target
UNIT
systemctl --root="$root" enable tillbox-probe.service
systemctl --root="$root" mask tillbox-mark-good.service
# systemd 252 inside nspawn on a host without systemd cannot mount service credentials
# ("Failed to set up credentials: Invalid argument"); three of Debian's own units load
# optional ones. Clearing them in this copy keeps "no failed units" about our units.
for unit in systemd-sysusers systemd-tmpfiles-setup systemd-tmpfiles-setup-dev; do
    mkdir -p "$root/etc/systemd/system/$unit.service.d"
    printf '[Service]\nLoadCredential=\n' > "$root/etc/systemd/system/$unit.service.d/no-credentials.conf"
done
start=$SECONDS
# --keep-unit --register=no: works without systemd as the host's PID 1 (CI containers).
timeout 900 systemd-nspawn --quiet --register=no --keep-unit --boot --directory="$root" \
    --bind="$work/result:/result" --machine=tillbox-test > "$work/console.log" 2>&1 || true
echo "nspawn boot to poweroff: $((SECONDS - start)) s" | tee -a "$OUT/build-time.txt"
cat "$work/result/status" 2>/dev/null || tail -40 "$work/console.log"
[ "$(cat "$work/result/active" 2>/dev/null)" = active ] || fail "tillbox-terminal.service is not active"
[ ! -s "$work/result/failed" ] || fail "failed units: $(cat "$work/result/failed")"
grep -q '"status":"ok"' "$work/result/healthz" || fail "healthz: $(cat "$work/result/healthz")"
echo "tillbox-terminal.service active, no failed units, /healthz ok"
fi

# -- 2. rauc install into loop-device slots, then mark good ------------------------------
step "rauc install into loop-device A/B slots"
size=$(( $(du -sm "$OUT/rootfs" | cut -f1) * 2 + 256 ))
for slot in a b; do
    truncate -s "${size}M" "$work/system-$slot.img"
    mkfs.ext4 -q -L "system-$slot" "$work/system-$slot.img"
    loops+=("$(losetup --find --show "$work/system-$slot.img")")
done
mkdir -p "$work/select" "$work/dt" "$work/run" "$work/mnt" "$work/rauc"
cp "$here/rpi/autoboot.txt" "$work/select/"
printf '\0\0\0\2' > "$work/dt/partition"   # booted from boot partition 2: slot A
printf '\0\0\0\0' > "$work/dt/tryboot"
cat > "$work/system.conf" <<CONF
[system]
compatible=tillbox-test
bootloader=custom
mountprefix=$work/rauc
statusfile=$work/central.raucs

[keyring]
path=$OUT/dev-ca/ca.cert.pem
check-purpose=codesign

[handlers]
bootloader-custom-backend=$here/rauc/tryboot

[slot.rootfs.0]
device=${loops[0]}
type=ext4
bootname=A

[slot.rootfs.1]
device=${loops[1]}
type=ext4
bootname=B
CONF
sed "s#{socket}#$work/bus#" > "$work/bus.conf" <<'BUS'
<busconfig><type>session</type><listen>unix:path={socket}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow send_destination="*"/><allow receive_sender="*"/><allow own="*"/>
</policy></busconfig>
BUS
dbus-daemon --config-file="$work/bus.conf" --nofork --print-address=3 3> "$work/bus.address" &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/bus.address" ] && break; sleep 0.1; done
export DBUS_SESSION_BUS_ADDRESS
DBUS_SESSION_BUS_ADDRESS=$(head -1 "$work/bus.address")
export DBUS_STARTER_BUS_TYPE=session TRYBOOT_SELECT=$work/select TRYBOOT_DT=$work/dt \
    TRYBOOT_RUN=$work/run TRYBOOT_REBOOT=true

rauc_service() { # booted-slot
    rauc --conf="$work/system.conf" --override-boot-slot="$1" service > "$work/rauc-$1.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 50); do
        dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
            org.freedesktop.DBus.NameHasOwner string:de.pengutronix.rauc 2>/dev/null \
            | grep -q 'boolean true' && return
        sleep 0.2
    done
    cat "$work/rauc-$1.log"; fail "rauc service did not come up"
}
rauc_service A
start=$SECONDS
rauc install "$OUT/tillbox.raucb" || { cat "$work/rauc-A.log"; fail "rauc install"; }
echo "rauc install: $((SECONDS - start)) s" | tee -a "$OUT/build-time.txt"
[ "$(sh "$here/rauc/tryboot" get-primary)" = B ] || fail "slot B is not primary after install"
mount -o ro "${loops[1]}" "$work/mnt"
[ -x "$work/mnt/opt/tillbox/venv/bin/tillbox" ] || fail "slot B has no tillbox"
umount "$work/mnt"

step "reboot into B (tryboot), mark it good"
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'
printf '\0\0\0\3' > "$work/dt/partition"
printf '\0\0\0\1' > "$work/dt/tryboot"
rm -f "$work/run/pending"
rauc_service B
rauc status mark-good || fail "rauc status mark-good"
grep -q '^boot_partition=3$' <(sed -n '1,/\[tryboot\]/p' "$work/select/autoboot.txt") \
    || fail "autoboot.txt did not commit slot B: $(cat "$work/select/autoboot.txt")"
rauc status --detailed --output-format=readable | sed -n '1,40p'
echo
echo "image/test.sh: all checks passed in $SECONDS s"
