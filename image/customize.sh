#!/bin/bash
# purpose: mmdebstrap customize hook: install Tillbox, its venv, units, users and RAUC config into $1.
# Runs on the build host with the arm64 root in $1; `chroot` runs arm64 code through qemu-user.
set -euo pipefail
root=$1
src=${TILLBOX_SRC:?}
sd=$src/systemd

in_root() { chroot "$root" "$@"; }

# The venv, offline: the wheel and the arm64 wheels build.sh fetched (evdev is compiled).
wheel=$(cd "$TILLBOX_WHEELS" && ls tillbox-*.whl)
mkdir -p "$root/tmp/wheels"
cp "$TILLBOX_WHEELS/$wheel" "$TILLBOX_WHEELS"/../wheels/* "$src/image/constraints.txt" "$root/tmp/wheels/"
in_root python3 -m venv /opt/tillbox/venv
# evdev's wheel, built in a fixed folder that is mapped out of the debug info (pip's own
# build folder has a random name), with its generated ecodes.c free of the build host's
# uname: the same extension bytes on every build.
sdist=$(cd "$root/tmp/wheels" && ls evdev-*.tar.gz)
tar -C "$root/tmp" --no-same-owner -xzf "$root/tmp/wheels/$sdist"
rm "$root/tmp/wheels/$sdist"
printf '[build_ecodes]\nreproducible = 1\n' > "$root/tmp/evdev.cfg"
in_root env DIST_EXTRA_CONFIG=/tmp/evdev.cfg CFLAGS="-ffile-prefix-map=/tmp/${sdist%.tar.gz}=." \
    /opt/tillbox/venv/bin/pip wheel --quiet --no-cache-dir --no-deps --no-index \
    --disable-pip-version-check --find-links /tmp/wheels --wheel-dir /tmp/wheels "/tmp/${sdist%.tar.gz}"
rm -rf "$root/tmp/${sdist%.tar.gz}" "$root/tmp/evdev.cfg"
in_root /opt/tillbox/venv/bin/pip install --quiet --no-cache-dir --no-compile --no-index \
    --disable-pip-version-check --find-links /tmp/wheels -c /tmp/wheels/constraints.txt \
    "/tmp/wheels/$wheel"
# Byte-code with hashes instead of timestamps: reproducible, and valid on a read-only /opt.
in_root /opt/tillbox/venv/bin/python -m compileall -q -j0 --invalidation-mode unchecked-hash \
    /opt/tillbox/venv/lib
rm -rf "$root/tmp/wheels"
in_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq --autoremove gcc python3-dev >/dev/null
install -d -m 0755 "$root/usr/share/doc/tillbox"
install -m 0644 "$src"/docs/*.md "$root/usr/share/doc/tillbox/"

# Units and their drop-ins.
install -m 0644 "$sd"/*.service "$root/usr/lib/systemd/system/"
install -D -m 0644 "$sd/sysusers.d/tillbox.conf" "$root/usr/lib/sysusers.d/tillbox.conf"
install -D -m 0644 "$sd/tmpfiles.d/tillbox.conf" "$root/usr/lib/tmpfiles.d/tillbox.conf"
install -D -m 0644 "$sd/journald.conf.d/tillbox.conf" "$root/usr/lib/systemd/journald.conf.d/tillbox.conf"
install -D -m 0644 "$sd/modules-load.d/tillbox.conf" "$root/usr/lib/modules-load.d/tillbox.conf"
install -D -m 0644 "$sd/system.conf.d/tillbox-watchdog.conf" \
    "$root/usr/lib/systemd/system.conf.d/tillbox-watchdog.conf"
install -D -m 0644 "$sd/polkit-1/rules.d/50-tillbox.rules" "$root/usr/share/polkit-1/rules.d/50-tillbox.rules"
if [ -d "$sd/udev" ]; then
    install -d "$root/usr/lib/udev/rules.d"
    find "$sd/udev" -name '*.rules' -exec install -m 0644 {} "$root/usr/lib/udev/rules.d/" \;
fi

# RAUC: system.conf, the keyring (the CA that signs bundles) and the tryboot backend.
install -D -m 0755 "$src/image/rauc/tryboot" "$root/usr/lib/tillbox/rauc-tryboot"
install -D -m 0644 "$src/image/rauc/system.conf" "$root/etc/rauc/system.conf"
install -D -m 0644 "$TILLBOX_SIGNING/ca.cert.pem" "$root/etc/rauc/keyring.pem"
install -D -m 0640 "$src/image/update.toml" "$root/etc/tillbox/update.toml"
printf '%s\n' "$TILLBOX_VERSION" > "$root/etc/tillbox-release"

# Users baked in (the same IDs on every box), then the folders they own.
systemd-sysusers --root="$root"
in_root chgrp -R tillbox /etc/tillbox  # the image's group, not the build host's
chmod 0750 "$root/etc/tillbox"

# Network: DHCP on any wired or USB Ethernet; time from NTP.
install -d "$root/etc/systemd/network"
cat > "$root/etc/systemd/network/20-wired.network" <<NET
[Match]
Type=ether

[Network]
DHCP=yes
NET
echo tillbox > "$root/etc/hostname"

# The data partition keeps the journal and RAUC's status across slot changes.
cat > "$root/etc/fstab" <<FSTAB
LABEL=tillbox-data  /data             ext4  defaults,noatime,nofail  0 2
/data/tillbox       /var/lib/tillbox  none  bind,nofail              0 0
FSTAB
install -d "$root/data" "$root/var/lib/tillbox"

units=(tillbox-terminal.service tillbox-mark-good.service systemd-networkd.service
    systemd-timesyncd.service)
if [ "${TILLBOX_KIOSK:-1}" = 1 ] && [ -e "$sd/tillbox-kiosk.service" ]; then
    units+=(tillbox-kiosk.service)
fi
systemctl --root="$root" enable "${units[@]}"
systemctl --root="$root" set-default multi-user.target

# Reproducibility: no per-build identity in the image (systemd makes one at first boot).
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id" "$root"/var/cache/apt/*.bin "$root"/var/log/*.log
