#!/bin/bash
# purpose: build the rootfs and a plain bundle twice from one snapshot of the checkout; compare the bytes.
# Usage: image/repro.sh [WORK]      (as root; WORK [image/build/repro] gets src/, a/, b/, report.txt)
# Environment: as image/build.sh; the defaults here are BOARD=none KIOSK=0 ZSTD_LEVEL=3 (about
#   8 min per build on 2 cores); SOURCE_DATE_EPOCH [last commit's time] is the same for both.
# Exit status 0 when rootfs.tar and the bundle's payload (its squashfs) are byte-identical.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
work=$(realpath -m "${1:-$here/build/repro}")
export BOARD=${BOARD:-none} KIOSK=${KIOSK:-0} FORMAT=plain ZSTD_LEVEL=${ZSTD_LEVEL:-3}
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$src" log -1 --format=%ct)}
export SOURCE_DATE_EPOCH

log() { printf '== %s\n' "$*" >&2; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

[ "$(id -u)" -eq 0 ] || { echo "image/repro.sh: run as root (mmdebstrap)" >&2; exit 1; }
if [ -e "$work" ] && [ ! -e "$work/report.txt" ] && [ -n "$(ls -A "$work")" ]; then
    echo "image/repro.sh: $work is not empty and not an earlier run of this script" >&2; exit 1
fi
rm -rf "$work"
mkdir -p "$work/src"
# Both builds read one copy of the checkout (tracked and new files, as they are now), so an
# edit during the half hour this takes cannot make them differ.
(cd "$src" && git ls-files -z --cached --others --exclude-standard | grep -zv '^image/build/' \
    | while IFS= read -r -d '' file; do if [ -e "$file" ]; then printf '%s\0' "$file"; fi; done \
    | xargs -0 cp -a --parents -t "$work/src")
# One signing CA for both: its certificate is the image's RAUC keyring.
export SIGNING=${SIGNING:-$work/dev-ca}
[ -e "$SIGNING/signing.key.pem" ] || "$here/dev-ca.sh" "$SIGNING" >/dev/null

report=$work/report.txt
echo "SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH BOARD=$BOARD KIOSK=$KIOSK ZSTD_LEVEL=$ZSTD_LEVEL" > "$report"
for build in a b; do
    log "build $build (log: $work/$build.log)"
    start=$SECONDS
    OUT=$work/$build nice -n 10 "$work/src/image/build.sh" rootfs bundle > "$work/$build.log" 2>&1 \
        || { tail -30 "$work/$build.log" >&2; exit 1; }
    echo "build $build: $((SECONDS - start)) s" >> "$report"
done

status=0
a_tar=$(sha "$work/a/rootfs.tar") b_tar=$(sha "$work/b/rootfs.tar")
echo "rootfs.tar: $(du -b "$work/a/rootfs.tar" | cut -f1) bytes; a $a_tar, b $b_tar" >> "$report"
if [ "$a_tar" = "$b_tar" ]; then
    echo "rootfs.tar: identical" >> "$report"
else
    status=1
    python3 "$here/repro_diff.py" tar "$work/a/rootfs.tar" "$work/b/rootfs.tar" \
        > "$work/rootfs.diff" || true
    echo "rootfs.tar: DIFFERENT, $(tail -1 "$work/rootfs.diff"); see $work/rootfs.diff" >> "$report"
fi
a_bundle=$(readlink -f "$work/a/tillbox.raucb") b_bundle=$(readlink -f "$work/b/tillbox.raucb")
if [ "$(sha "$a_bundle")" = "$(sha "$b_bundle")" ]; then
    echo "bundle: identical, $(sha "$a_bundle")" >> "$report"
else
    # The CMS signature carries its signing time (and ECDSA signatures are randomised),
    # so compare what it signs: the squashfs in front of it.
    echo "bundle: the signed files differ (CMS signing time)" >> "$report"
    for build in a b; do
        python3 "$here/repro_diff.py" payload "$work/$build/tillbox.raucb" "$work/$build/payload.sqfs"
    done
    a_sqfs=$(sha "$work/a/payload.sqfs") b_sqfs=$(sha "$work/b/payload.sqfs")
    if [ "$a_sqfs" = "$b_sqfs" ]; then
        echo "bundle payload: identical, $(du -b "$work/a/payload.sqfs" | cut -f1) bytes, $a_sqfs" >> "$report"
    else
        status=1
        echo "bundle payload: DIFFERENT; a $a_sqfs, b $b_sqfs" >> "$report"
    fi
fi
cat "$report"
exit "$status"
