"""scripts/gpu-check.sh in its dry mode: the GPU check's own code runs on the CPU before any GPU is lent."""

import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_check_dry_run_writes_every_part_and_a_report(tmp_path):
    r = subprocess.run(["bash", str(ROOT / "scripts" / "gpu-check.sh"), str(tmp_path / "gc"), "--dry"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout.strip().splitlines()[-1]) == {"gpu_check": str(tmp_path / "gc"), "ok": True}
    res = json.loads((tmp_path / "gc" / "gpu-check.json").read_text())
    assert res["dry"] is True and set(res["parts"]) == {"throughput", "ddp", "imdb"}
    rows = res["parts"]["throughput"]["rows"]
    assert {(r["bs"], r["arch"]) for r in rows} == {(4, "awd_lstm"), (4, "qrnn"), (8, "awd_lstm"), (8, "qrnn")}
    assert all(r["tokens_per_s"] > 0 for r in rows)
    assert res["parts"]["ddp"]["ok"] and res["parts"]["ddp"]["valid_loss"] > 0
    imdb = res["parts"]["imdb"]
    assert imdb["ok"] and 0 <= imdb["accuracy"] <= 1 and imdb["stages"]["classifier"] > 0
    md = (tmp_path / "gc" / "report.md").read_text()
    for heading in ("## LM training throughput", "## Two ranks (torchrun)", "## imdb-fast, scaled to minutes"):
        assert heading in md
