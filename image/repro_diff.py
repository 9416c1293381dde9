# purpose: name what differs between two builds: tar members (image/repro.sh) and bundle payloads.
"""Usage: repro_diff.py tar A.tar B.tar | repro_diff.py payload BUNDLE OUT."""

import hashlib
import sys
import tarfile
from pathlib import Path

Member = tuple[str, str]  # (metadata line, sha256 of the content or "-")


def members(path: Path) -> dict[str, Member]:
    """Each member's name → its `tar -tv`-like metadata and content hash."""
    out: dict[str, Member] = {}
    with tarfile.open(path) as tar:
        for info in tar:
            meta = (
                f"{info.type.decode()} {info.mode:o} {info.uid}:{info.gid} {info.mtime} "
                f"{info.size} {info.linkname} {sorted(info.pax_headers.items())}"
            )
            digest = "-"
            stream = tar.extractfile(info) if info.isfile() else None
            if stream is not None:
                sha = hashlib.sha256()
                while chunk := stream.read(1 << 20):
                    sha.update(chunk)
                digest = sha.hexdigest()
            out[info.name] = (meta, digest)
    return out


def diff_tars(a: Path, b: Path) -> int:
    """Print one line per member that is missing from one tar or differs; return the count."""
    left, right = members(a), members(b)
    count = 0
    for name in sorted(left.keys() | right.keys()):
        if name not in right or name not in left:
            print(f"only in {a if name in left else b}: {name}")
        elif left[name][0] != right[name][0]:
            print(f"metadata: {name}\n  {left[name][0]}\n  {right[name][0]}")
        elif left[name][1] != right[name][1]:
            print(f"content:  {name}")
        else:
            continue
        count += 1
    print(f"{count} of {len(left | right)} members differ")
    return count


def payload(bundle: Path, out: Path) -> None:
    """Write a RAUC bundle's squashfs: it ends with the CMS signature and its size (u64 BE)."""
    data = bundle.read_bytes()
    signature_size = int.from_bytes(data[-8:], "big")
    out.write_bytes(data[: len(data) - 8 - signature_size])


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[1] == "tar":
        return 1 if diff_tars(Path(argv[2]), Path(argv[3])) else 0
    if len(argv) == 4 and argv[1] == "payload":
        payload(Path(argv[2]), Path(argv[3]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
