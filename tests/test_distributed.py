"""Two processes under torchrun (gloo on the CPU) train like one process on the combined batch."""

import json
import os
import subprocess
import sys

import pytest
import torch

from classifier_helpers import synthetic_store
from test_lm_cli import make_store
from ulmfit.cli import main

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without torch.distributed")


def torchrun(*args, nproc=2, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "ulmfit", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def history(folder):
    return json.loads((folder / "history.json").read_text())


# --fp32 and no dropout: the two runs then differ only in the order of floating-point sums
LM = ["--preset", "tiny", "--arch", "qrnn", "--bs", "8", "--bptt", "10", "--epochs", "2", "--max-steps", "24",
      "--drop-mult", "0", "--fp32", "--quiet", "--threads", "1", "--valid-tokens", "400"]


def test_two_ranks_pretrain_an_lm_like_one_process_on_the_combined_batch(tmp_path):
    make_store(tmp_path / "corpus", [f"w{i}" for i in range(20)])
    assert main(["pretrain", str(tmp_path / "corpus"), "--out", str(tmp_path / "one"), *LM]) == 0
    r = torchrun("pretrain", tmp_path / "corpus", "--out", tmp_path / "two", *LM)
    assert r.returncode == 0, r.stderr[-3000:]
    one, two = history(tmp_path / "one"), history(tmp_path / "two")
    assert [h["step"] for h in one] == [h["step"] for h in two]  # the same batches: each rank half of each
    for a, b in zip(one, two):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=2e-3)
        assert b["valid_loss"] == pytest.approx(a["valid_loss"], rel=2e-3)
    assert two[-1]["valid_loss"] < two[0]["train_loss"]  # and it learned
    from ulmfit.artifacts import load_language_model

    load_language_model(tmp_path / "two")  # rank 0 wrote a whole folder
    # and fine-tuning runs under torchrun too (the same loop; frozen then unfrozen groups)
    r = torchrun("finetune-lm", tmp_path / "corpus", "--from", tmp_path / "two", "--out", tmp_path / "ft",
                 "--bs", "8", "--bptt", "10", "--frozen-steps", "4", "--epochs", "1", "--max-steps", "8", "--quiet",
                 "--threads", "1", "--valid-tokens", "400")
    assert r.returncode == 0, r.stderr[-3000:]
    ft = history(tmp_path / "ft")
    assert [h["step"] for h in ft] == [4, 12] and ft[-1]["valid_loss"] < two[0]["valid_loss"]
    # a batch too small to give each rank two rows trains nothing: an error, not an epoch of skipped steps
    r = torchrun("pretrain", tmp_path / "corpus", "--out", tmp_path / "small", *LM[:4], "--bs", "3", "--bptt", "10",
                 "--epochs", "1", "--max-steps", "4", "--quiet", "--threads", "1")
    assert r.returncode != 0 and "at least 2 rows per rank (raise --bs to 4 or more)" in r.stderr


def test_a_stopped_two_rank_classifier_resumes_in_one_process_and_learns(tmp_path):
    synthetic_store(tmp_path / "data", n_docs=240, n_test=60)
    args = ["train-classifier", tmp_path / "data", "--out", tmp_path / "c", "--preset", "tiny", "--arch", "qrnn",
            "--bs", "16", "--bptt", "10", "--max-len", "40", "--stages", "1:1:3e-2,all:4:3e-2", "--lr-div", "1",
            "--drop-mult", "0.1", "--quiet", "--threads", "1"]
    r = torchrun(*args, "--max-steps", "20")  # stopped like a killed run that had checkpointed
    assert r.returncode == 0, r.stderr[-3000:]
    pos = json.loads((tmp_path / "c" / "checkpoint.json").read_text())["position"]
    assert pos["step"] == 20 and not pos["done"]
    # resume with another number of ranks: the batches do not depend on it
    assert main([*map(str, args), "--resume"]) == 0
    h = history(tmp_path / "c")
    assert len(h) == 5 and h[-1]["step"] == 5 * 12  # 180 training documents in batches of 16: 12 a epoch
    assert h[-1]["accuracy"] > 0.8  # the word marking the class is learnable
    assert main(["evaluate", str(tmp_path / "c"), str(tmp_path / "data"), "--quiet"]) == 0


def test_ulmfit_run_with_nproc_2_trains_under_torchrun_and_rank_0_reports(tmp_path, run_cli):
    from test_prepare import make_imdb_tar
    from ulmfit.run.config import dump_toml, load_config

    tar = make_imdb_tar(tmp_path / "aclImdb_v1.tar.gz", n=20)
    cfg = load_config("tiny")
    cfg.pop("lr_find")
    cfg["nproc"] = 2
    cfg["pretrain"]["threads"] = cfg["classifier"]["threads"] = 1
    (tmp_path / "n.toml").write_text(dump_toml(cfg))
    code, stdout, err = run_cli("run", tmp_path / "n.toml", "--source", tar, "--out", tmp_path / "run", "--quiet")
    assert code == 0, err
    stages = json.loads((tmp_path / "run" / "stages.json").read_text())
    assert all(stages[n]["status"] == "done" for n in ("prepare", "tokenize", "lm", "classifier", "evaluate"))
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["config"]["nproc"] == 2 and 0 <= report["accuracy"] <= 1


def test_a_command_leaves_the_process_group_before_exit(tmp_path):
    # gloo's threads abort a process that exits still in its group (SIGABRT after a successful torchrun run)
    import torch.distributed as dist

    def join(k):  # a file store: no port to collide with
        dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store{k}", rank=0, world_size=1)

    join(0)
    try:
        assert main(["models"]) == 0
        assert not dist.is_initialized()
        join(1)
        assert main(["evaluate-lm", str(tmp_path / "missing"), str(tmp_path / "missing")]) == 1  # an error too
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_a_torchrun_worker_exits_with_its_code_and_output_but_without_the_interpreters_teardown(tmp_path):
    # the teardown is where gloo's C++ threads now and then abort a finished worker; `python -m ulmfit` skips it
    # under torchrun (WORLD_SIZE > 1), keeping the command's exit code and everything it printed
    hook = ("import atexit, runpy, sys; atexit.register(lambda: print('teardown ran')); "
            "sys.argv = ['ulmfit', *sys.argv[1:]]; runpy.run_module('ulmfit', run_name='__main__', alter_sys=True)")

    def run(world, *args):
        env = {**os.environ, "WORLD_SIZE": world}
        return subprocess.run([sys.executable, "-c", hook, *args], capture_output=True, text=True, env=env, timeout=120)

    alone, worker = run("1", "models"), run("2", "models")
    assert alone.returncode == worker.returncode == 0
    assert "teardown ran" in alone.stdout and "teardown ran" not in worker.stdout
    assert "en-qrnn" in worker.stdout and worker.stdout == alone.stdout.replace("teardown ran\n", "")
    failed = run("2", "evaluate-lm", str(tmp_path / "missing"), str(tmp_path / "missing"))
    assert failed.returncode == 1 and "ulmfit evaluate-lm: error:" in failed.stderr
