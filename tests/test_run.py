import json

import numpy as np
import pytest

from test_prepare import make_imdb_tar
from ulmfit.run.config import dump_toml, load_config, validate
from ulmfit.errors import UlmfitError


def test_presets_load_and_round_trip(tmp_path):
    import tomllib

    for name in ("tiny", "imdb-cpu", "imdb-fast", "imdb-paper"):
        cfg = load_config(name)
        assert cfg["name"] == name and cfg["data"]["kind"] == "imdb"
        again = validate(tomllib.loads(dump_toml(cfg)), "x")
        assert again == cfg


def test_a_data_section_without_a_kind_lays_the_other_sections_over_the_text_preset(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text("[data]\nsource = 'train.csv'\ntest = 'test.csv'\n[classifier]\npatience = 3\n")
    cfg, preset = load_config(path), load_config("text-cpu")
    assert cfg["data"]["kind"] == "table" and cfg["data"]["test"] == "test.csv"
    assert cfg["classifier"]["patience"] == 3
    same = lambda d: {k: v for k, v in d.items() if k != "patience"}  # noqa: E731
    assert same(cfg["classifier"]) == same(preset["classifier"]) and preset["classifier"]["patience"] != 3
    assert cfg["finetune_lm"] == preset["finetune_lm"]


def test_bad_configs_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[pretrain]\nmode = 'magic'\n")
    with pytest.raises(UlmfitError, match="mode must be one of"):
        load_config(bad)
    bad.write_text("[pretrian]\n")
    with pytest.raises(UlmfitError, match="unknown section"):
        load_config(bad)
    bad.write_text("[data\n")
    with pytest.raises(UlmfitError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(UlmfitError, match="no preset"):
        load_config("nope")
    # every key and type is checked at load time, naming the file, the section and the key
    for text, match in [("[tokenize]\nmin_freqq = 2\n", r"bad.toml: \[tokenize\]: unknown key 'min_freqq'"),
                        ("[data]\nkind = 'table'\nlabelcol = 'y'\n", r"\[data\]: unknown key 'labelcol' \(did you mean 'label_col'"),
                        ("[classifier]\nbs = 'big'\n", r"\[classifier\]: key 'bs' must be an integer, got 'big'"),
                        ("[classifier]\nhead = [50, 'x']\n", r"\[classifier\]: key 'head' must be a list of an integer"),
                        ("[pretrain]\narch = 'gru'\n", r"\[pretrain\]: key 'arch' must be one of awd_lstm, qrnn"),
                        ("[classifier]\nbackwards = 'yes'\n", r"\[classifier\] backwards must be true, false or \"auto\", got 'yes'"),
                        ("[classifier]\nbackwards = 1\n", r"\[classifier\]: key 'backwards' must be a bool or str"),
                        ("[evaluate]\nout = 'x'\n", r"\[evaluate\]: key 'out' is set by `ulmfit run` itself"),
                        ("[pretrain]\nmode = 'from'\nfolder = 'en'\nepochs = 2\n", r"\[pretrain\]: key 'epochs' does nothing"),
                        ("[tokenize]\nkeep_vocab = 'pretrained'\n", r"keep_vocab = 'pretrained'.*needs \[pretrain\] mode = 'from'"),
                        ("nproc = 0\n", r"nproc must be a whole number")]:
        bad.write_text(text)
        with pytest.raises(UlmfitError, match=match):
            load_config(bad)


def test_run_tiny_end_to_end_then_reuse(tmp_path, run_cli):
    tar = make_imdb_tar(tmp_path / "aclImdb_v1.tar.gz", n=30)
    out = tmp_path / "run"
    code, stdout, err = run_cli("run", "tiny", "--source", tar, "--out", out, "--quiet")
    assert code == 0, err
    assert "report:" in stdout and "test accuracy" in stdout
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["n_docs"] == 150 and report["tokens"]["vocab_size"] > 9
    assert 0 <= report["accuracy"] <= 1 and report["evaluation"]["n"] > 0
    assert report["language_models"]["lm"]["final_perplexity"] > 1
    md = (out / "report.md").read_text()
    assert md.startswith("# ulmfit run: tiny")
    assert "Validated on: 20 % of train held out of training (forward)." in md
    assert report["lr_find"]["suggested"] > 0 and (out / report["lr_find"]["plot"]).stat().st_size > 1000
    for image in ("lr_find/lr_find.png", "lm/training_curve.png", "classifier/confusion.png"):
        assert f"]({image})" in md and (out / image).exists()
    stages = json.loads((out / "stages.json").read_text())
    names = ["prepare", "tokenize", "baseline", "lr_find", "lm", "classifier", "evaluate"]
    base = report["baseline"]
    assert 0 <= base["accuracy"] <= 1 and base["valid"]["n"] == 12 and "TF-IDF baseline" in stdout  # 20 % of 60
    assert "Without the language model" in md and report["verdict"].startswith("ULMFiT")
    blend = report["evaluation"]["blend"]  # [evaluate] blend = "baseline": the run's own baseline folder
    assert blend["baseline"] == str(out / "baseline") and 0 <= blend["weight"] <= 1 and "held out" in blend["weight_chosen"]
    assert "blended with the TF-IDF baseline" in md and "blended with the baseline" in stdout
    assert all(stages[n]["status"] == "done" and not stages[n]["reused"] for n in names)
    weights = (out / "classifier" / "model.safetensors").stat().st_mtime_ns

    code, stdout, err = run_cli("run", "tiny", "--source", tar, "--out", out, "--quiet")
    assert code == 0, err
    stages = json.loads((out / "stages.json").read_text())
    assert all(stages[n]["reused"] for n in names)  # the second run reuses every stage
    assert (out / "classifier" / "model.safetensors").stat().st_mtime_ns == weights

    code, _, err = run_cli("run", "tiny", "--source", tar, "--out", out, "--quiet", "--from", "classifier")
    assert code == 0, err
    stages = json.loads((out / "stages.json").read_text())
    assert stages["lm"]["reused"] and not stages["classifier"]["reused"] and not stages["evaluate"]["reused"]

    # a training stage left `running` (the process was killed) continues from its checkpoint
    stages["classifier"]["status"] = "running"
    (out / "stages.json").write_text(json.dumps(stages))
    assert (out / "classifier" / "checkpoint.safetensors").exists()
    code, _, err = run_cli("run", "tiny", "--source", tar, "--out", out, "--quiet")
    assert code == 0, err
    assert "stage classifier: resuming" in err
    stages = json.loads((out / "stages.json").read_text())
    assert stages["classifier"]["status"] == "done" and stages["lm"]["reused"]
    assert not stages["evaluate"]["reused"]  # it reads the classifier, which ran again


def test_a_run_without_a_hold_out_reports_no_blend(tmp_path, run_cli):
    tar = make_imdb_tar(tmp_path / "aclImdb_v1.tar.gz", n=30)
    cfg = load_config("tiny")
    cfg["data"]["source"] = str(tar)
    cfg["classifier"].pop("valid_frac")  # validated on the test split: no documents to choose a weight on
    cfg.pop("lr_find")
    (tmp_path / "t.toml").write_text(dump_toml(cfg))
    code, stdout, err = run_cli("run", tmp_path / "t.toml", "--out", tmp_path / "run", "--quiet")
    assert code == 0, err
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert "blend" not in report["evaluation"] and 0 <= report["accuracy"] <= 1 and "blended" not in stdout


def test_a_run_with_self_training_evaluates_the_self_trained_classifier_and_resumes(tmp_path, run_cli):
    """[self_train]: the classifier stage is round 0; rounds of new classifiers on the labels + the unlabelled
    reviews they label; the last is the model evaluated, and the report has a table of the rounds."""
    tar = make_imdb_tar(tmp_path / "aclImdb_v1.tar.gz", n=30)
    cfg = load_config("tiny")
    cfg["data"]["source"] = str(tar)
    cfg["classifier"]["limit_train"] = 20  # the other train reviews join the pool: their labels check the teacher
    cfg["self_train"] = {"rounds": [5, 10], "student_stages": "1:1:2e-2"}
    cfg.pop("lr_find")
    (tmp_path / "st.toml").write_text(dump_toml(cfg))
    out = tmp_path / "run"
    code, stdout, err = run_cli("run", tmp_path / "st.toml", "--out", out, "--quiet")
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    st = report["self_training"]
    # 60 train reviews, 12 held out, 20 labelled: the pool is the 28 other train reviews + the 30 unlabelled ones
    assert st["labelled"] == 20 and st["pool"] == 58 and st["per_class"] == [5, 10]
    added = [r["pseudo_labelled"] for r in st["rounds"]]  # K per class the teacher predicts (a tiny one: maybe one)
    assert added[0] == 0 and 5 <= added[1] <= 10 and 10 <= added[2] <= 20
    assert st["rounds"][0]["folder"] == str(out / "classifier")  # the classifier stage is round 0: not trained again
    assert not (out / "self-train" / "self-train" / "round-0").exists()
    assert all(r["held_labels_seen"] > 0 for r in st["rounds"][1:])
    assert report["evaluation"]["models"] == [str(out / "self-train" / "best")]
    assert "self-trained" in report["classifiers"] and "## Self-training" in (out / "report.md").read_text()
    stages = json.loads((out / "stages.json").read_text())
    assert stages["self_train"]["status"] == "done"
    mtime = (out / "self-train" / "model.safetensors").stat().st_mtime_ns

    # killed during the last round: the finished round is kept, the stage resumes
    stages["self_train"]["status"] = "running"
    (out / "stages.json").write_text(json.dumps(stages))
    round1 = out / "self-train" / "self-train" / "round-1" / "model.safetensors"
    r1 = round1.stat().st_mtime_ns
    (out / "self-train" / "history.json").unlink()
    code, _, err = run_cli("run", tmp_path / "st.toml", "--out", out, "--quiet")
    assert code == 0, err
    assert "stage self_train: resuming" in err and round1.stat().st_mtime_ns == r1
    assert (out / "self-train" / "model.safetensors").stat().st_mtime_ns != mtime
    stages = json.loads((out / "stages.json").read_text())
    assert stages["classifier"]["reused"] and stages["self_train"]["status"] == "done"

    for section, match in [({"rounds": [5], "stages": "1:1:1e-2"}, r"\[self_train\]: key 'stages' does not belong here "
                                                                      r"\(\[classifier\]\)"),
                           ({"roundz": [5]}, r"key 'roundz' does not belong here \(one of rounds, student_stages")]:
        cfg["self_train"] = section
        (tmp_path / "bad.toml").write_text(dump_toml(cfg))
        with pytest.raises(UlmfitError, match=match):
            load_config(tmp_path / "bad.toml")
    cfg["self_train"] = {"rounds": [5]}
    cfg["classifier"]["backwards"] = True
    (tmp_path / "bad.toml").write_text(dump_toml(cfg))
    with pytest.raises(UlmfitError, match=r"\[self_train\] trains new forward classifiers"):
        load_config(tmp_path / "bad.toml")


def test_print_config(run_cli):
    code, out, _ = run_cli("run", "--print-config", "imdb-cpu")
    assert code == 0 and "[classifier]" in out and 'name = "imdb-cpu"' in out


def test_run_a_multi_label_table_config(tmp_path, run_cli):
    """`ulmfit run FILE.toml` on a table source: labels separated by '|' make a multi-label run end to end."""
    rng = np.random.default_rng(0)
    lines = ["text,tags"]
    for _ in range(120):
        tags = [t for t in ("a", "b") if rng.random() < 0.5]
        words = [f"w{int(w)}" for w in rng.integers(0, 12, size=8)] + [{"a": "alpha", "b": "beta"}[t] for t in tags]
        lines.append(f"{' '.join(words)},{'|'.join(tags)}")
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    cfg = load_config("tiny")
    cfg["data"] = {"kind": "table", "source": str(tmp_path / "train.csv"), "text_col": ["text"],
                   "label_col": ["tags"], "label_sep": "|", "valid_frac": 0.25}
    cfg["tokenize"]["min_freq"] = 1
    cfg.pop("lr_find")
    (tmp_path / "ml.toml").write_text(dump_toml(cfg))
    code, stdout, err = run_cli("run", tmp_path / "ml.toml", "--out", tmp_path / "run", "--quiet")
    assert code == 0, err
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["data"]["classes"] == ["a", "b"] and report["evaluation"]["n"] == 30  # the prepared valid split
    assert 0 <= report["accuracy"] <= 1 and len(report["evaluation"]["f1"]) == 2
    assert "blend" not in report["evaluation"]  # the preset's blend = "baseline" is for single-label data only
    assert "**Valid exact-match accuracy" in (tmp_path / "run" / "report.md").read_text()
    assert "valid accuracy" in stdout
    assert "- per-label F1: a " in (tmp_path / "run" / "report.md").read_text()


def test_run_corpus_pretraining_both_directions_and_the_ensemble(tmp_path, run_cli):
    """mode = corpus: pretrain -> finetune_lm -> classifier, forward and backward, evaluated as an ensemble."""
    tar = make_imdb_tar(tmp_path / "aclImdb_v1.tar.gz", n=20)
    rng = np.random.default_rng(0)
    words = "the a film story good bad actor plot was is it and of review".split()
    (tmp_path / "corpus.jsonl").write_text("".join(
        json.dumps({"text": " ".join(rng.choice(words, size=30))}) + "\n" for _ in range(200)))
    cfg = load_config("tiny")
    cfg.pop("lr_find")
    cfg["pretrain"] = {**cfg["pretrain"], "mode": "corpus", "corpus": [str(tmp_path / "corpus.jsonl")], "max_steps": 5}
    cfg["finetune_lm"] = {"bs": 8, "bptt": 20, "frozen_steps": 3, "epochs": 1, "max_steps": 5, "threads": 2}
    cfg["classifier"]["backwards"] = True
    (tmp_path / "c.toml").write_text(dump_toml(cfg))
    out = tmp_path / "run"
    code, stdout, err = run_cli("run", tmp_path / "c.toml", "--source", tar, "--out", out, "--quiet")
    assert code == 0, err
    stages = json.loads((out / "stages.json").read_text())
    for name in ("pretrain", "pretrain-bwd", "finetune_lm", "finetune_lm-bwd", "classifier", "classifier-bwd"):
        assert stages[name]["status"] == "done", name
    assert stages["pretrain-bwd"]["settings"]["backwards"] is True and "backwards" not in stages["pretrain"]["settings"]
    assert json.loads((out / "lm-bwd" / "config.json").read_text())["backwards"] is True
    assert json.loads((out / "classifier-bwd" / "config.json").read_text())["classifier"]["backwards"] is True
    ev = json.loads((out / "evaluation" / "evaluation.json").read_text())
    assert len(ev["models"]) == 2 and len(ev["single_accuracy"]) == 2
    report = (out / "report.md").read_text()
    assert "(forward + backward ensemble)" in report and "| backward |" in report
    assert f"each model alone: forward {ev['single_accuracy'][0]:.4f}, backward" in report


def test_backwards_auto_trains_the_backward_model_only_when_the_run_has_time_for_it(tmp_path, run_cli, monkeypatch):
    """backwards = "auto": decided from the forward direction's own time once it is trained, kept in stages.json
    (a rerun goes the same way), and said in the report; left out, the backward stages never run."""
    from ulmfit.run import budget

    tar = make_imdb_tar(tmp_path / "aclImdb_v1.tar.gz", n=20)
    cfg = load_config("tiny")
    cfg.pop("lr_find")
    cfg["classifier"]["backwards"] = "auto"
    (tmp_path / "c.toml").write_text(dump_toml(cfg))
    monkeypatch.setattr(budget, "BACKWARD_AUTO_S", 0.0)  # no time for it
    out = tmp_path / "short"
    code, _, err = run_cli("run", tmp_path / "c.toml", "--source", tar, "--out", out, "--quiet")
    assert code == 0, err
    stages = json.loads((out / "stages.json").read_text())
    assert stages["_backward"]["train"] is False and "not trained" in err
    assert "classifier-bwd" not in stages and "lm-bwd" not in stages and not (out / "classifier-bwd").exists()
    assert len(json.loads((out / "evaluation" / "evaluation.json").read_text())["models"]) == 1
    assert "Backward model: not trained (backwards = \"auto\")" in (out / "report.md").read_text()
    monkeypatch.setattr(budget, "BACKWARD_AUTO_S", 1e9)  # a rerun keeps the decision its forward model was given
    code, _, err = run_cli("run", tmp_path / "c.toml", "--source", tar, "--out", out, "--quiet")
    assert code == 0, err
    stages = json.loads((out / "stages.json").read_text())
    assert stages["evaluate"]["reused"] and "classifier-bwd" not in stages

    out = tmp_path / "long"  # time enough: both directions, evaluated as an ensemble
    code, _, err = run_cli("run", tmp_path / "c.toml", "--source", tar, "--out", out, "--quiet")
    assert code == 0, err
    stages = json.loads((out / "stages.json").read_text())
    assert stages["_backward"]["train"] is True
    assert stages["lm-bwd"]["status"] == stages["classifier-bwd"]["status"] == "done"
    assert len(json.loads((out / "evaluation" / "evaluation.json").read_text())["models"]) == 2
    assert "Backward model: trained too" in (out / "report.md").read_text()


def test_every_presets_sections_are_valid_stage_settings():
    """The GPU presets never run in this suite: at least each section must make its stage's settings."""
    from ulmfit.run.config import stage_settings

    from ulmfit.run.config import SECTIONS, OPTIONAL_SECTIONS, preset_names

    assert {"tiny", "imdb-cpu", "imdb-fast", "imdb-paper", "text-cpu", "text-gpu"} <= set(preset_names())
    for name in preset_names():
        cfg = load_config(name)
        for section in cfg:
            if section in SECTIONS + OPTIONAL_SECTIONS:
                stage_settings(cfg, section, f"preset {name}")


def test_the_verdict_says_plainly_when_the_baseline_wins():
    from ulmfit.run.report import verdict

    clas = {"forward": {"final": {"accuracy": 0.80}}}
    assert verdict(clas, {"valid": {"accuracy": 0.90}}).startswith("ULMFiT does NOT beat the TF-IDF baseline")
    assert verdict(clas, {"valid": {"accuracy": 0.70}}).startswith("ULMFiT beats")
    assert verdict(clas, {"valid": None}) is None and verdict({}, {"valid": {"accuracy": 0.7}}) is None
    # a run that evaluates the epoch best on its hold-out is judged by that epoch
    clas["forward"]["best"] = {"accuracy": 0.92}
    assert verdict(clas, {"valid": {"accuracy": 0.90}}, best=True).startswith("ULMFiT beats")
    assert "NOT" in verdict(clas, {"valid": {"accuracy": 0.90}}, best=False)
    # a blend that beats the baseline on the same held-out documents is named as the better choice
    v = verdict(clas, {"valid": {"accuracy": 0.90}}, blend={"valid_accuracy": 0.91})
    assert v.startswith("ULMFiT alone does NOT beat") and "the blend is the better choice" in v
    assert "linear model is the better" in verdict(clas, {"valid": {"accuracy": 0.90}}, blend={"valid_accuracy": 0.9})


def test_a_config_with_only_data_gets_the_generic_preset_and_base_merges_key_by_key(tmp_path):
    (tmp_path / "mine.toml").write_text("[data]\nsource = 'train.csv'\ntest = 'test.csv'\n")
    cfg = load_config(tmp_path / "mine.toml")
    text = load_config("text-cpu")
    assert cfg["name"] == "mine" and cfg["pretrain"] == text["pretrain"] == {"mode": "from", "folder": "en-qrnn"}
    assert cfg["data"] == {**text["data"], "source": "train.csv", "test": "test.csv"}
    gpu = load_config("text-gpu")
    assert gpu["finetune_lm"] == {**text["finetune_lm"], "bs": 64, "sampled": 0} and gpu["classifier"]["bs"] == 64
    (tmp_path / "b.toml").write_text("base = 'tiny'\n[classifier]\nbs = 4\n")
    b = load_config(tmp_path / "b.toml")
    assert b["classifier"] == {**load_config("tiny")["classifier"], "bs": 4} and b["name"] == "b"
    (tmp_path / "c.toml").write_text("base = 'nope'\n")
    with pytest.raises(UlmfitError, match="no preset 'nope'"):
        load_config(tmp_path / "c.toml")
