"""Cut a folder into pieces of at most N MiB, and put it back together, checked.

The device tool brings back at most 8 files of 16 MiB (64 MiB together) per call, and a paper-size model is more
(docs/gpu.md, "Issue 28 under today's device limits"); a folder travels as an uncompressed tar cut into pieces,
with a manifest holding each piece's sha256 (and the whole tar's, to compare two splits), so that a missing or
broken piece is named before anything is unpacked.

    python scripts/pieces.py split FOLDER DEST --mib 15     # DEST/NAME.tar.000, .001, ... and DEST/NAME.pieces.json
    python scripts/pieces.py join SRC DEST                  # every SRC/*.pieces.json -> DEST/NAME/
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _reset(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = info.mtime = 0
    info.uname = info.gname = ""
    return info


def _tar_bytes(folder: Path) -> bytes:
    """The folder as an uncompressed tar (fp16 weights barely compress) under the folder's name; tarfile adds a
    folder's entries sorted, and owners and times are fixed, so the same folder gives the same bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(folder, arcname=folder.name, filter=_reset)
    return buf.getvalue()


def split(folder: Path, dest: Path, mib: float) -> dict:
    """folder -> dest/NAME.tar.000 ... (each at most `mib` MiB) and dest/NAME.pieces.json; -> the manifest."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SystemExit(f"{folder}: not a folder")
    if mib <= 0:
        raise SystemExit(f"--mib must be positive, got {mib}")
    data = _tar_bytes(folder)
    size = max(1, int(mib * 2**20))
    dest.mkdir(parents=True, exist_ok=True)
    pieces = []
    for k, start in enumerate(range(0, len(data), size)):
        chunk = data[start : start + size]
        name = f"{folder.name}.tar.{k:03d}"
        (dest / name).write_bytes(chunk)
        pieces.append({"name": name, "bytes": len(chunk), "sha256": _sha256(chunk)})
    manifest = {"folder": folder.name, "bytes": len(data), "sha256": _sha256(data), "pieces": pieces}
    (dest / f"{folder.name}.pieces.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def join(src: Path, dest: Path) -> list[Path]:
    """Every src/*.pieces.json: check its pieces, then unpack the folder into dest; -> the folders made. Nothing is
    unpacked unless every piece of that folder is there and matches; an existing folder is not overwritten."""
    manifests = sorted(Path(src).glob("*.pieces.json"))
    if not manifests:
        raise SystemExit(f"{src}: no *.pieces.json here")
    made = []
    for mf in manifests:
        m = json.loads(mf.read_text())
        parts = []
        for p in m["pieces"]:
            path = Path(src) / p["name"]
            if not path.exists():
                raise SystemExit(f"{mf}: piece {p['name']} is missing (of {len(m['pieces'])})")
            chunk = path.read_bytes()
            if len(chunk) != p["bytes"] or _sha256(chunk) != p["sha256"]:
                raise SystemExit(f"{path}: {len(chunk)} bytes that do not match {mf} (expected {p['bytes']})")
            parts.append(chunk)
        data = b"".join(parts)  # every piece matched its sha256, in the manifest's order
        target = Path(dest) / m["folder"]
        if target.exists():
            raise SystemExit(f"{target} exists: not overwritten (move it away or join elsewhere)")
        with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
            top = {Path(t.name).parts[0] for t in tar.getmembers()}
            if top != {m["folder"]}:
                raise SystemExit(f"{mf}: the tar holds {sorted(top)}, not only {m['folder']!r}")
            tar.extractall(dest, filter="data")  # "data": no absolute paths, links out or special files
        made.append(target)
    return made


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("split", help="a folder -> pieces of at most --mib MiB and a manifest")
    s.add_argument("folder", type=Path)
    s.add_argument("dest", type=Path)
    s.add_argument("--mib", type=float, default=15.0, help="the largest piece, in MiB (the device tool takes 16)")
    j = sub.add_parser("join", help="pieces and their manifests -> the folders, checked")
    j.add_argument("src", type=Path)
    j.add_argument("dest", type=Path)
    a = p.parse_args(argv)
    if a.cmd == "split":
        m = split(a.folder, a.dest, a.mib)
        print(json.dumps({"folder": m["folder"], "bytes": m["bytes"], "pieces": len(m["pieces"])}))
    else:
        for folder in join(a.src, a.dest):
            print(folder)


if __name__ == "__main__":
    sys.exit(main())
