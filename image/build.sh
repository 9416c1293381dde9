#!/bin/bash
# purpose: build the appliance: arm64 Debian bookworm rootfs (mmdebstrap), RAUC bundle, SD-card image.
# Usage: image/build.sh [rootfs] [bundle] [disk]      (no argument: all three)
# Environment (defaults in brackets):
#   OUT [image/build]        where everything goes
#   BOARD [rpi]              rpi: Pi firmware + Debian arm64 kernel; none: rootfs only (tests)
#   KIOSK [1]                1: cage + Chromium for tillbox-kiosk.service; 0: headless
#   FORMAT [verity]          RAUC bundle format: verity (devices) or plain (tests)
#   SIGNING [OUT/dev-ca]     folder from image/dev-ca.sh (signing.{cert,key}.pem, ca.cert.pem)
#   VERSION [<pyproject version>+<commit date>]   the bundle's version
#   ZSTD_LEVEL [19]          compression of the bundle's rootfs (19: smallest download)
#   SOURCE_DATE_EPOCH [last commit's time]         clamps every timestamp: same input, same tar
#   MIRROR [mmdebstrap's default]                  a Debian mirror URL
# Needs (Debian): mmdebstrap qemu-user-static binfmt-support rauc squashfs-tools genimage
#   dosfstools mtools zstd python3-venv; run as root (mmdebstrap's root mode, loop mounts).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
OUT=${OUT:-$here/build}
BOARD=${BOARD:-rpi}
KIOSK=${KIOSK:-1}
FORMAT=${FORMAT:-verity}
SIGNING=${SIGNING:-$OUT/dev-ca}
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$src" log -1 --format=%ct 2>/dev/null || echo 0)}
export SOURCE_DATE_EPOCH
pyversion=$(sed -n 's/^version = "\(.*\)"/\1/p' "$src/pyproject.toml" | head -1)
VERSION=${VERSION:-$pyversion+$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d%H%M)}
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(rootfs bundle disk)

log() { printf '== %s\n' "$*" >&2; }
list() { grep -v -e '^#' -e '^$' "$@" | paste -sd, -; }

mkdir -p "$OUT"

build_rootfs() {
    ensure_signing  # its CA becomes the image's RAUC keyring
    log "wheel"
    rm -rf "$OUT/wheel"
    # PIP_CONSTRAINT reaches the isolated build too: a pinned setuptools writes the metadata.
    PIP_CONSTRAINT="$here/constraints.txt" python3 -m pip wheel --quiet --no-deps \
        --wheel-dir "$OUT/wheel" "$src"
    # The arm64 dependencies are fetched here, by the build host's pip (its index and
    # certificates), and installed offline in the image: pinned, and no network in the root.
    log "arm64 wheels (constraints.txt)"
    rm -rf "$OUT/wheels"
    local pins
    # Resolve the wheel's dependency tree (constraints.txt pins it) with the host's pip, then
    # fetch each pinned package built for aarch64.
    python3 -m pip install --quiet --dry-run --ignore-installed --report "$OUT/resolve.json" \
        -c "$here/constraints.txt" "$OUT"/wheel/tillbox-*.whl
    pins=$(python3 "$here/pins.py" "$OUT/resolve.json" wheels)
    # shellcheck disable=SC2086
    python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$OUT/wheels" \
        --implementation cp --python-version 3.11 --abi cp311 --abi abi3 --abi none \
        --platform manylinux_2_28_aarch64 --platform manylinux_2_17_aarch64 \
        --platform manylinux2014_aarch64 --platform any -c "$here/constraints.txt" \
        $pins setuptools wheel
    # evdev ships no wheels: its source, compiled in the image.
    python3 -m pip download --quiet --no-deps --no-binary=:all: --dest "$OUT/wheels" \
        "$(python3 "$here/pins.py" "$OUT/resolve.json" evdev)"
    local include components="main"
    include=$(list "$here/packages.txt")
    if [ "$BOARD" = rpi ]; then
        include="$include,$(list "$here/packages-rpi.txt")"
        components="main,non-free-firmware"
    fi
    if [ "$KIOSK" = 1 ]; then
        include="$include,$(list "$here/packages-kiosk.txt")"
    fi
    log "rootfs: mmdebstrap arm64 bookworm (BOARD=$BOARD KIOSK=$KIOSK, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH)"
    export TILLBOX_SRC="$src" TILLBOX_WHEELS="$OUT/wheel" TILLBOX_SIGNING="$SIGNING" \
        TILLBOX_BOARD="$BOARD" TILLBOX_KIOSK="$KIOSK" TILLBOX_VERSION="$VERSION"
    # shellcheck disable=SC2086
    mmdebstrap --mode=root --architectures=arm64 --variant=apt \
        --components="$components" --include="$include" \
        --customize-hook='"$TILLBOX_SRC"/image/customize.sh "$1"' \
        bookworm "$OUT/rootfs.tar" ${MIRROR:-}
    rm -rf "$OUT/rootfs"
    mkdir -p "$OUT/rootfs"
    tar -C "$OUT/rootfs" --numeric-owner -xpf "$OUT/rootfs.tar"
    sha256sum "$OUT/rootfs.tar" | tee "$OUT/rootfs.tar.sha256"
}

ensure_signing() {
    if [ ! -e "$SIGNING/signing.key.pem" ]; then
        log "no signing key in $SIGNING: making a development CA (image/dev-ca.sh)"
        "$here/dev-ca.sh" "$SIGNING" >&2
    fi
}

build_bundle() {
    ensure_signing
    log "bundle: $FORMAT, version $VERSION"
    local dir="$OUT/bundle-src"
    rm -rf "$dir"
    mkdir -p "$dir"
    # Deterministic: the tar is mmdebstrap's (sorted, clamped), zstd is deterministic per level
    # (single-threaded), mksquashfs takes its times from SOURCE_DATE_EPOCH.
    zstd -q -T1 "-${ZSTD_LEVEL:-19}" -f "$OUT/rootfs.tar" -o "$dir/rootfs.tar.zst"
    local boot_image=""
    if [ -d "$OUT/rootfs/boot/firmware" ] && [ -n "$(ls -A "$OUT/rootfs/boot/firmware")" ]; then
        tar -C "$OUT/rootfs/boot/firmware" --sort=name --owner=0 --group=0 --numeric-owner \
            --mtime="@$SOURCE_DATE_EPOCH" -cf "$dir/boot.tar" .
        boot_image=$'\n[image.boot]\nfilename=boot.tar\n'
    fi
    cat > "$dir/manifest.raucm" <<MANIFEST
[update]
compatible=${COMPATIBLE:-tillbox-rpi-arm64}
version=$VERSION
build=$SOURCE_DATE_EPOCH

[bundle]
format=$FORMAT

[image.rootfs]
filename=rootfs.tar.zst
$boot_image
MANIFEST
    rm -f "$OUT/tillbox-$VERSION.raucb"
    rauc bundle --cert="$SIGNING/signing.cert.pem" --key="$SIGNING/signing.key.pem" \
        --keyring="$SIGNING/ca.cert.pem" "$dir" "$OUT/tillbox-$VERSION.raucb"
    ln -sf "tillbox-$VERSION.raucb" "$OUT/tillbox.raucb"
    sha256sum "$OUT/tillbox-$VERSION.raucb" | tee "$OUT/tillbox-$VERSION.raucb.sha256"
}

build_disk() {
    [ "$BOARD" = rpi ] || { log "disk: only for BOARD=rpi"; return 1; }
    log "disk: genimage (select, boot A/B, system A/B, data; 1 MiB aligned)"
    local tmp="$OUT/genimage-tmp" staging="$OUT/staging"
    rm -rf "$tmp" "$staging" "$OUT/images"
    mkdir -p "$staging/select" "$staging/boot" "$staging/data/rauc" "$staging/data/tillbox"
    cp "$here/rpi/autoboot.txt" "$staging/select/"
    cp -a "$OUT/rootfs/boot/firmware/." "$staging/boot/"
    # raspi-firmware wrote config.txt naming Debian's kernel and initrd; add ours.
    cat "$OUT/rootfs/boot/firmware/config.txt" "$here/rpi/config.txt" > "$staging/boot/config.txt"
    sed 's/@SLOT@/A/; s/@ROOT@/mmcblk0p5/' "$here/rpi/cmdline.txt" > "$staging/boot/cmdline.txt"
    # Slot B starts as a copy of A that names itself B; the first update overwrites it.
    cp -a "$staging/boot" "$staging/boot-b"
    sed 's/@SLOT@/B/; s/@ROOT@/mmcblk0p6/' "$here/rpi/cmdline.txt" > "$staging/boot-b/cmdline.txt"
    (cd "$staging" && E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH genimage --config "$here/genimage.cfg" --rootpath "$OUT/rootfs" \
        --tmppath "$tmp" --inputpath "$staging" --outputpath "$OUT/images")
    ls -l "$OUT/images"
}

for stage in "${stages[@]}"; do
    case $stage in
        rootfs) build_rootfs ;;
        bundle) build_bundle ;;
        disk) build_disk ;;
        *) echo "build.sh: unknown stage $stage (rootfs, bundle, disk)" >&2; exit 2 ;;
    esac
done
