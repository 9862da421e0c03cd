"""scripts/pieces.py: a folder cut into size-limited pieces (what the device tool brings back) and joined, checked."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _pieces():
    spec = importlib.util.spec_from_file_location("pieces", ROOT / "scripts" / "pieces.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _folder(root: Path) -> Path:
    d = root / "run-fwd"
    (d / "sub").mkdir(parents=True)
    (d / "model.safetensors").write_bytes(os.urandom(300_000))
    (d / "config.json").write_text('{"a": 1}')
    (d / "sub" / "log.csv").write_text("step,loss\n1,2.5\n")
    return d


def _files(d: Path) -> dict:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_split_makes_pieces_under_the_limit_and_join_gives_the_same_files(tmp_path):
    P = _pieces()
    src = _folder(tmp_path / "a")
    m = P.split(src, tmp_path / "out", mib=0.1)
    sizes = [(tmp_path / "out" / p["name"]).stat().st_size for p in m["pieces"]]
    assert len(sizes) == 3 and max(sizes) <= 0.1 * 2**20 and sum(sizes) == m["bytes"]
    made = P.join(tmp_path / "out", tmp_path / "back")
    assert made == [tmp_path / "back" / "run-fwd"] and _files(made[0]) == _files(src)
    # the same folder gives the same bytes (fixed owners and times), so a rerun's pieces can be compared
    assert P.split(src, tmp_path / "again", mib=0.1)["sha256"] == m["sha256"]


def test_join_names_a_missing_or_broken_piece_and_unpacks_nothing(tmp_path):
    P = _pieces()
    P.split(_folder(tmp_path / "a"), tmp_path / "out", mib=0.1)
    (tmp_path / "out" / "run-fwd.tar.001").rename(tmp_path / "kept")
    with pytest.raises(SystemExit, match=r"piece run-fwd.tar.001 is missing \(of 3\)"):
        P.join(tmp_path / "out", tmp_path / "back")
    broken = bytearray((tmp_path / "kept").read_bytes())
    broken[10] ^= 1
    (tmp_path / "out" / "run-fwd.tar.001").write_bytes(bytes(broken))
    with pytest.raises(SystemExit, match="run-fwd.tar.001: .* do not match"):
        P.join(tmp_path / "out", tmp_path / "back")
    assert not (tmp_path / "back").exists()


def test_join_does_not_overwrite_a_folder_and_the_cli_reports_what_it_did(tmp_path):
    src = _folder(tmp_path / "a")
    cli = [sys.executable, str(ROOT / "scripts" / "pieces.py")]
    r = subprocess.run([*cli, "split", str(src), str(tmp_path / "out"), "--mib", "0.2"], capture_output=True, text=True)
    assert r.returncode == 0 and json.loads(r.stdout)["pieces"] == 2
    (tmp_path / "back" / "run-fwd").mkdir(parents=True)
    r = subprocess.run([*cli, "join", str(tmp_path / "out"), str(tmp_path / "back")], capture_output=True, text=True)
    assert r.returncode != 0 and "exists: not overwritten" in r.stderr
    assert list((tmp_path / "back" / "run-fwd").iterdir()) == []
