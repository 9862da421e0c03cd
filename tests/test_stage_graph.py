"""The stage graph (`ulmfit.run.graph`) and the data-source registry (`ulmfit.data.sources`): the declarations
the runner, `--from`, the report and `ulmfit prepare` all read."""

import json

import pytest

import ulmfit
from ulmfit.data import sources
from ulmfit.errors import UlmfitError
from ulmfit.run import graph as G
from ulmfit.run.config import load_config, validate
from ulmfit.settings import PrepareSettings


def _cfg(**sections):
    base = {"data": {"kind": "table", "source": "x.csv"}, "pretrain": {"mode": "from", "folder": "en-qrnn"}}
    return validate({**base, **sections}, "test")


def test_every_preset_plans_stages_with_unique_names_and_folders_whose_inputs_come_first():
    for name in ("tiny", "imdb-cpu", "imdb-fast", "imdb-paper", "text-cpu", "text-gpu"):
        stages = G.plan(load_config(name))
        names = [s.name for s in stages]
        assert len(set(names)) == len(names), name
        assert set(names) <= set(G.ALL_NAMES), name
        folders = [s.folder for s in stages if s.kind not in (G.PREPARE, G.TOKENIZE)]  # both write data/
        assert len(set(folders)) == len(folders), name
        for i, st in enumerate(stages):
            assert set(st.inputs) <= set(names[:i]), (name, st.name)  # a stage reads only stages before it
        assert names[:3] == ["prepare", "tokenize", "baseline"] and names[-1] == "evaluate"


def test_the_graph_follows_the_pretrain_mode_the_directions_and_the_optional_sections():
    assert G.names(_cfg()) == ["prepare", "tokenize", "baseline", "finetune_lm", "classifier", "evaluate"]
    both = G.plan(_cfg(classifier={"backwards": True}, lr_find={}))
    assert [s.name for s in both] == ["prepare", "tokenize", "baseline", "lr_find", "finetune_lm", "classifier",
                                      "finetune_lm-bwd", "classifier-bwd", "evaluate"]
    by_name = {s.name: s for s in both}
    assert by_name["classifier-bwd"].inputs == ("tokenize", "finetune_lm-bwd")
    assert by_name["classifier-bwd"].folder == "classifier-bwd" and by_name["finetune_lm-bwd"].folder == "lm-bwd"
    assert "classifier-bwd" in by_name["evaluate"].inputs
    corpus = G.plan(_cfg(pretrain={"mode": "corpus", "corpus": ["c.jsonl"]}))
    fine = next(s for s in corpus if s.kind is G.FINETUNE_LM)
    assert fine.inputs == ("tokenize", "pretrain")
    scratch = G.names(_cfg(pretrain={"mode": "scratch"}))
    assert "lm" in scratch and "finetune_lm" not in scratch
    none = G.plan(_cfg(pretrain={"mode": "none"}))
    assert next(s for s in none if s.kind is G.CLASSIFIER).inputs == ("tokenize",)
    selft = G.plan(_cfg(self_train={"rounds": [0.5]}))
    assert G.final_classifier(_cfg(self_train={"rounds": [0.5]})).name == "self_train"
    assert selft[-2].kind is G.SELF_TRAIN and "self_train" in selft[-1].inputs


def test_the_run_command_offers_exactly_the_graphs_names_for_from():
    from ulmfit.cli.run import STAGES

    assert STAGES == G.ALL_NAMES
    with pytest.raises(UlmfitError, match="has no stage 'classifier-bwd'"):
        from ulmfit.run.runner import check_force_from

        check_force_from(_cfg(), "classifier-bwd")


# ---------------------------------------------------------------------------------------------- sources


def _read_lines(source, out, s):
    """A toy source: a text file of `label<TAB>text` lines, written as a folder per class and prepared as one."""
    from pathlib import Path

    root = Path(out).parent / "lines-as-folder"
    for i, line in enumerate(Path(source).read_text().splitlines()):
        label, text = line.split("\t", 1)
        (root / label).mkdir(parents=True, exist_ok=True)
        (root / label / f"{i}.txt").write_text(text)
    return sources.get("folder").read(str(root), out, ulmfit.settings.FolderSettings(
        lm_valid_frac=s.lm_valid_frac, seed=s.seed, force=s.force, quiet=s.quiet))


@pytest.fixture
def lines_source():
    spec = sources.register(sources.SourceSpec(
        "lines", PrepareSettings, _read_lines, help="label<TAB>text lines", description="A test source.",
        source_metavar="file", source_help="a text file"))
    yield spec
    sources.unregister("lines")


def test_a_source_registered_outside_ulmfit_drives_prepare_the_command_and_the_run_config(tmp_path, lines_source,
                                                                                        run_cli, capsys):
    src = tmp_path / "l.txt"
    src.write_text("".join(f"{'pos' if i % 2 else 'neg'}\tsome words number {i}\n" for i in range(12)))
    meta = ulmfit.prepare("lines", str(src), tmp_path / "d", PrepareSettings(quiet=True))
    assert meta["classes"] == ["neg", "pos"] and meta["n_docs"] == 12
    with pytest.raises(SystemExit):
        run_cli("prepare", "--help")
    assert "label<TAB>text lines" in capsys.readouterr().out
    rc, out, _ = run_cli("prepare", "lines", str(src), "--out", str(tmp_path / "d2"), "--quiet")
    assert rc == 0 and json.loads((tmp_path / "d2" / "dataset.json").read_text())["n_docs"] == 12
    cfg = validate({"data": {"kind": "lines", "source": str(src)}, "pretrain": {"mode": "none"}}, "test")
    assert cfg["data"]["kind"] == "lines"
    with pytest.raises(UlmfitError, match="prepare lines takes PrepareSettings, not TokenizeSettings"):
        ulmfit.prepare("lines", str(src), tmp_path / "d3", ulmfit.settings.TokenizeSettings())


def test_unknown_and_duplicate_sources_are_clear_errors(tmp_path):
    with pytest.raises(UlmfitError, match=r"unknown source kind 'nope' \(choose from: imdb, table, folder, corpus"):
        ulmfit.prepare("nope", "x", tmp_path / "d")
    with pytest.raises(UlmfitError, match="already registered"):
        sources.register(sources.get("table"))
    with pytest.raises(UlmfitError, match=r"\[data\] kind must be one of imdb, table, folder, not 'corpus'"):
        validate({"data": {"kind": "corpus", "source": "x"}}, "test")
