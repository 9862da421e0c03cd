"""Sizing a run to its data and to a time budget (ulmfit.run.budget, the runner's plan, the report)."""

import json
import math
import time

import numpy as np
import pytest

import ulmfit
from ulmfit.errors import UlmfitError
from ulmfit.run import budget as B
from ulmfit.run.config import dump_toml, load_config
from ulmfit.settings import PretrainSettings

STAGES = "1:2:4e-2,2:2:2e-2,3:2:1e-2,all:4:5e-3"


def fake_lm(tokens_per_s=10_000.0, spe=100):
    return {"train_s_per_token": 1 / tokens_per_s, "eval_s_per_token": 2e-5, "steps_per_epoch": spe,
            "tokens_per_step": 32 * 70, "valid_tokens": 10_000}


def fake_clas(tokens_per_s=5_000.0, n_docs=5_000):
    return {"train_s_per_token": 1 / tokens_per_s, "eval_s_per_token": 5e-5, "train_tokens": 200_000,
            "valid_tokens": 20_000, "steps_per_epoch": 150, "n_train_docs": n_docs}


def test_durations_parse_and_bad_ones_are_clear_errors():
    assert B.parse_duration("30m") == 1800 and B.parse_duration("1h30m") == 5400
    assert B.parse_duration("90s") == 90 and B.parse_duration("1.5h") == 5400 and B.parse_duration(2.5) == 150
    assert B.parse_duration("45min") == 2700 and B.parse_duration("1h 5m") == 3900
    for bad in ("30", "thirty minutes", "30m garbage", "0m", -1, True, [30]):
        with pytest.raises(UlmfitError, match="duration like '30m'|must be positive"):
            B.parse_duration(bad)


def test_epochs_are_spread_over_the_unfreezing_stages_as_the_preset_spreads_them():
    assert B.spread_epochs(STAGES, 10) == "1:2:0.04,2:2:0.02,3:2:0.01,all:4:0.005"
    assert B.spread_epochs(STAGES, 5) == "1:1:0.04,2:1:0.02,3:1:0.01,all:2:0.005"
    # more than the preset's 10: the unfreezing stages keep theirs, the rest goes to the last
    assert B.spread_epochs(STAGES, 20) == "1:2:0.04,2:2:0.02,3:2:0.01,all:14:0.005"
    assert B.spread_epochs(STAGES, 7) == "1:1:0.04,2:1:0.02,3:1:0.01,all:4:0.005"
    # fewer epochs than stages: the head first, everything unfrozen last
    assert B.spread_epochs(STAGES, 2) == "1:1:0.04,all:1:0.005"
    assert B.spread_epochs(STAGES, 1) == "all:1:0.005"


def test_a_fake_throughput_gives_the_expected_steps_and_epochs():
    plan = B.size_to_budget(600, 60, fake_lm(), fake_clas(), test_tokens=50_000, stages=STAGES, lm_tokens=224_000)
    # by hand: evaluation 50k x 5e-5 x 1.2 + 5 = 8 s; left 600 x 0.95 - 60 - 8 = 502 s; the LM's share 45 %
    # = 225.9 s; a step 2,240 tokens x 1e-4 s x the probe's slack 1.15 = 0.2576 s -> (225.9 - 5 - 2 x 0.2) /
    # (0.2576 + 0.2 / 100) = 849 steps: 51 frozen, then 798 unfrozen (7 whole epochs and 98 steps of an 8th)
    assert plan["finetune_lm"]["frozen_steps"] == 51 and plan["finetune_lm"]["epochs"] == 8
    assert plan["finetune_lm"]["max_steps"] == 798
    # the classifier gets the rest: 502 - (5 + 849 x 0.2576 + 10 x 0.2) = 276.3 s -> (276.3 - 5) // 42 = 6 epochs
    assert plan["classifier"]["stages"] == B.spread_epochs(STAGES, 6)
    planned = sum(plan["seconds"].values())
    assert planned <= 600 * (1 - B.MARGIN) - 60 + 1e-6
    assert plan["finetune_lm"]["max_minutes"] == pytest.approx(B.HARD_STOP * plan["seconds"]["finetune_lm"] / 60,
                                                               abs=0.01)
    # twice the speed: about twice the LM steps
    fast = B.size_to_budget(600, 60, fake_lm(20_000), fake_clas(10_000), 50_000, STAGES, lm_tokens=224_000)
    steps = lambda p: B.lm_steps_of(p["finetune_lm"], 100)  # noqa: E731
    assert 1.8 < steps(fast) / steps(plan) < 2.2
    epochs = lambda p: sum(int(st.split(":")[1]) for st in p["classifier"]["stages"].split(","))  # noqa: E731
    assert epochs(fast) > epochs(plan)


def test_the_data_caps_a_generous_budget_and_a_tiny_budget_is_refused():
    plan = B.size_to_budget(36_000, 60, fake_lm(), fake_clas(n_docs=5_000), 50_000, STAGES, lm_tokens=224_000)
    assert B.lm_steps_of(plan["finetune_lm"], 100) <= B.LM_MAX_PASSES * 100  # passes capped
    assert plan["classifier"]["stages"] == B.spread_epochs(STAGES, 12)  # 60k doc-visits / 5k docs
    assert "max_minutes" in plan["classifier"]  # sized to a share of the budget: a hard stop past it
    # no budget for the run or the classifier (text-cpu budgets only its LM): epochs from the data, and no hard
    # stop from the probe's estimate (the preset's max_minutes stays the cap)
    free = B.size_to_budget(math.inf, 60, fake_lm(), fake_clas(n_docs=5_000), 50_000, STAGES, lm_tokens=224_000,
                            lm_budget_s=600)
    assert free["classifier"]["stages"] == B.spread_epochs(STAGES, 12) and "max_minutes" not in free["classifier"]
    assert "max_minutes" in free["finetune_lm"]
    # less than an epoch fits: one whole epoch (its schedule completes) over the documents that fit
    slow = B.size_to_budget(300, 60, None, fake_clas(tokens_per_s=200), 50_000, STAGES)
    assert slow["classifier"]["stages"] == "all:1:0.005" and 4 <= slow["classifier"]["limit_train"] < 5_000
    assert slow["seconds"]["classifier"] <= 300 * (1 - B.MARGIN) - 60
    # a stage's own budget is its share; the other stage gets what is left of the run's
    own = B.size_to_budget(1800, 60, fake_lm(), fake_clas(), 50_000, STAGES, lm_tokens=224_000, clas_budget_s=900)
    assert sum(own["seconds"].values()) <= 1800 * (1 - B.MARGIN) - 60 + 1e-6
    with pytest.raises(UlmfitError, match="no time for LM fine-tuning"):
        B.size_to_budget(1800, 60, fake_lm(), fake_clas(), 50_000, STAGES, clas_budget_s=1700)
    with pytest.raises(UlmfitError, match="too small.*preparing"):
        B.size_to_budget(100, 90, fake_lm(), fake_clas(), 50_000, STAGES)


def test_sized_to_the_data_small_corpora_get_many_passes_large_ones_one():
    small = B.size_to_data(250_000, 2240, 110, 5_400, STAGES)
    assert B.lm_steps_of(small["finetune_lm"], 110) == B.LM_MAX_PASSES * 110
    assert small["classifier"]["stages"] == B.spread_epochs(STAGES, 11)
    large = B.size_to_data(27_000_000, 4480, 6_000, 24_000, STAGES)
    assert B.lm_steps_of(large["finetune_lm"], 6_000) == 6_000  # one pass
    assert large["classifier"]["stages"] == B.spread_epochs(STAGES, B.CLAS_EPOCHS[0])
    # a large table still gets several all-layer epochs (one, after the unfreezing stages, left a 67k-row table
    # 2 points short on its hold-out)
    assert large["classifier"]["stages"] == "1:1:0.04,2:1:0.02,3:1:0.01,all:4:0.005"


def _table(path, n, rng):
    topics = {"sport": "ball goal team match player", "money": "bank price market stock trade"}
    filler = "the a of and to in is it".split()
    lines = ["label,text"]
    for i in range(n):
        label = list(topics)[i % 2]
        words = list(rng.choice(topics[label].split(), size=4)) + list(rng.choice(filler, size=8))
        rng.shuffle(words)
        lines.append(f"{label},{' '.join(words)}")
    path.write_text("\n".join(lines) + "\n")


def test_a_budgeted_run_plans_from_a_probe_stops_inside_its_budget_and_reports_it(tmp_path, run_cli):
    rng = np.random.default_rng(0)
    _table(tmp_path / "train.csv", 240, rng)
    _table(tmp_path / "test.csv", 60, rng)
    # a tiny "pretrained" LM to start from
    ulmfit.prepare("table", tmp_path / "train.csv", tmp_path / "corpus")
    ulmfit.tokenize(tmp_path / "corpus")
    ulmfit.pretrain(tmp_path / "corpus", tmp_path / "pre", PretrainSettings(
        preset="tiny", arch="qrnn", epochs=1, max_steps=5, bs=4, bptt=10, threads=1, quiet=True))
    cfg = load_config("tiny")
    cfg.pop("lr_find")
    cfg["budget"] = "60s"
    cfg["data"] = {"kind": "table", "source": str(tmp_path / "train.csv"), "test": str(tmp_path / "test.csv"),
                   "label_col": ["label"]}
    cfg["pretrain"] = {"mode": "from", "folder": str(tmp_path / "pre")}
    cfg["finetune_lm"] = {"bs": 8, "bptt": 20, "threads": 2}
    cfg["classifier"].pop("limit_train")
    (tmp_path / "b.toml").write_text(dump_toml(cfg))
    t0 = time.time()
    code, stdout, err = run_cli("run", tmp_path / "b.toml", "--out", tmp_path / "run", "--quiet")
    took = time.time() - t0
    assert code == 0, err
    assert took < 60 * 1.1, took
    state = json.loads((tmp_path / "run" / "stages.json").read_text())
    plan = state["_plan"]["plan"]
    probe = plan["probe"]
    assert probe["finetune_lm"]["train_s_per_token"] > 0 and probe["classifier"]["n_train_docs"] == 240 * 0.8
    # the stages ran with the planned settings
    assert state["finetune_lm"]["settings"]["frozen_steps"] == plan["finetune_lm"]["frozen_steps"]
    assert state["classifier"]["settings"]["stages"] == plan["classifier"]["stages"]
    assert state["classifier"]["settings"]["max_minutes"] <= 1.0
    md = (tmp_path / "run" / "report.md").read_text()
    assert "## Schedule" in md and "Budget 1 min: the run took" in md and "| finetune_lm | " in md
    assert "sizing: LM fine-tuning:" in err
    # run again: every stage and the plan itself are reused (no new probe, no new keys)
    code, _, err = run_cli("run", tmp_path / "b.toml", "--out", tmp_path / "run", "--quiet")
    assert code == 0 and "the plan made when this run started" in err and "stage classifier: reused" in err


def test_budget_keys_are_checked_at_load(tmp_path):
    for text, msg in (("budget = 'soon'\n[data]\nsource = 'x.csv'\n", "budget must be a duration"),
                      ("base = 'tiny'\nbudget = '10m'\n", "needs \\[pretrain\\] mode = 'from'"),
                      ("base = 'text-cpu'\nsizing = 'auto'\n", "sizing must be one of fixed, data"),
                      ("base = 'text-cpu'\n[classifier]\nbudget = [1]\n", "\\[classifier\\] budget must be a duration")):
        (tmp_path / "c.toml").write_text(text)
        with pytest.raises(UlmfitError, match=msg):
            load_config(tmp_path / "c.toml")
    # a budget beside a lone [data] section still gets the generic preset
    (tmp_path / "c.toml").write_text("budget = '30m'\n[data]\nsource = 'x.csv'\n")
    cfg = load_config(tmp_path / "c.toml")
    assert cfg["budget"] == "30m" and cfg["pretrain"]["folder"] == "en-qrnn" and cfg["data"]["kind"] == "table"


def test_short_texts_get_more_classifier_epochs_long_ones_do_not():
    # TREC-6-like: 4,417 questions of 12 tokens: 1.5M token-visits ask for 28 epochs, the 60k doc-visits for 14
    short = B.size_to_data(None, 2240, None, 4_417, STAGES, n_train_tokens=53_000)
    assert short["classifier"]["stages"] == "1:2:0.04,2:2:0.02,3:2:0.01,all:22:0.005"
    # agnews-like (45 tokens a text) and IMDb-like: the document count decides, as before
    assert B.size_to_data(None, 2240, None, 5_400, STAGES, n_train_tokens=243_000)["classifier"]["stages"] == \
        B.spread_epochs(STAGES, 11)
    assert B.size_to_data(None, 2240, None, 24_000, STAGES, n_train_tokens=6_700_000)["classifier"]["stages"] == \
        B.spread_epochs(STAGES, B.CLAS_EPOCHS[0])
    # never past the most epochs, however short
    tiny = B.size_to_data(None, 2240, None, 500, STAGES, n_train_tokens=3_000)
    assert tiny["classifier"]["stages"] == B.spread_epochs(STAGES, B.CLAS_EPOCHS[1])


def test_the_report_says_when_a_stage_of_a_data_sized_run_was_sized_by_the_probe():
    from ulmfit.run.report import _render_sizing

    z = {"budget_seconds": None, "lines": ["LM fine-tuning: 2,470 steps"], "planned_seconds": {"finetune_lm": 720.0},
         "actual_seconds": {"finetune_lm": 600.0}, "probe_seconds": 12.4, "probed": True}
    text = "\n".join(_render_sizing(z, 900.0))
    assert "measured speed (a 12 s probe)" in text and "Sized to the data:" not in text
    assert "| finetune_lm | 12.0 min | 10.0 min |" in text
    z["probed"] = False  # sized to the data alone: no probe ran
    assert "Sized to the data:" in "\n".join(_render_sizing(z, 900.0))


def test_the_backward_model_is_trained_when_the_run_with_it_ends_within_its_limit():
    # no run budget: BACKWARD_AUTO_S; the backward direction is taken to need the forward one's time
    limit = B.BACKWARD_AUTO_S
    ok, line = B.backward_fits(spent_s=limit / 2, forward_s=limit / 2 - 60, eval_s=30)
    assert ok and "trained too" in line and f"within {limit / 60:g} min" in line
    ok, line = B.backward_fits(spent_s=limit / 2, forward_s=limit / 2 - 60, eval_s=90)
    assert not ok and "not trained" in line and "past" in line
    # a run budget is the limit instead, less its margin
    assert B.backward_fits(spent_s=600, forward_s=500, eval_s=0, budget_s=1200)[0]  # 1100 s of 1140
    assert not B.backward_fits(spent_s=600, forward_s=600, eval_s=0, budget_s=1200)[0]
