"""report.md + report.json for a run folder: what a person reads and what a script parses."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

from ..io import read_json, write_json, write_text
from . import graph as G
from .config import dump_toml


def _read(path):
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None


def hardware() -> dict:
    import torch

    cpu = platform.processor() or ""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    hw = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return hw


def versions() -> dict:
    import numpy
    import spacy
    import torch

    from .. import __version__

    return {
        "ulmfit": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "spacy": spacy.__version__,
    }


def _lm_summary(folder: Path):
    hist = _read(folder / "history.json")
    if not hist:
        return None
    rows = hist if isinstance(hist, list) else hist.get("history", [])
    if not rows:
        return None
    last = rows[-1]
    return {
        "folder": folder.name,
        "epochs": [
            {
                k: r.get(k)
                for k in ("phase", "epoch", "step", "train_loss", "valid_loss", "accuracy", "perplexity", "partial")
            }
            for r in rows
        ],
        "final_perplexity": last.get("perplexity"),
        "final_accuracy": last.get("accuracy"),
        "curve": f"{folder.name}/training_curve.png" if (folder / "training_curve.png").exists() else None,
    }


def _clas_summary(folder: Path):
    hist = _read(folder / "history.json")
    rows = (hist if isinstance(hist, list) else (hist or {}).get("history", [])) or []
    keep = ("phase", "epoch", "step", "train_loss", "valid_loss", "accuracy", "macro_f1", "partial")
    training = (_read(folder / "config.json") or {}).get("training", {})
    valid = training.get("valid_split")
    if valid and training.get("valid_frac"):
        valid = f"{100 * training['valid_frac']:g} % of {valid} held out of training"
    return {
        "folder": folder.name,
        "epochs": [{k: r.get(k) for k in keep if k in r} for r in rows],
        "valid": valid,
        "final": _read(folder / "metrics.json"),
        "best": _read(folder / "best" / "metrics.json"),
        "curve": f"{folder.name}/training_curve.png" if (folder / "training_curve.png").exists() else None,
        "confusion": f"{folder.name}/confusion.png" if (folder / "confusion.png").exists() else None,
    }


def _fmt(x, nd=4):
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def verdict(classifiers: dict, baseline: dict | None, best: bool = False, blend: dict | None = None) -> str | None:
    """Whether ULMFiT beat the baseline on the documents both validated on (the evaluated classifier's epoch --
    the self-trained one if any, else the forward one; its best on a hold-out when `best`, else its last -- against
    the baseline on the same held-out documents), and the blend of the two when there is one; None when they shared
    none."""
    fwd = (classifiers.get("self-trained") or classifiers.get("forward") or {}).get("best" if best else "final") or {}
    base = (baseline or {}).get("valid") or {}
    if fwd.get("accuracy") is None or base.get("accuracy") is None:
        return None
    a, b = fwd["accuracy"], base["accuracy"]
    if a > b:
        return f"ULMFiT beats the TF-IDF baseline on validation: {100 * a:.2f} % vs {100 * b:.2f} %."
    v = (blend or {}).get("valid_accuracy")
    if v is not None and v > b:
        return (
            f"ULMFiT alone does NOT beat the TF-IDF baseline on validation ({100 * a:.2f} % vs {100 * b:.2f} %); "
            f"blended with it, it does ({100 * v:.2f} %): the blend is the better choice for this data."
        )
    return (
        f"ULMFiT does NOT beat the TF-IDF baseline on validation ({100 * a:.2f} % vs {100 * b:.2f} %): "
        "the linear model is the better choice for this data as configured (more LM fine-tuning or "
        "classifier epochs may change that)."
    )


def _sizing(state) -> dict | None:
    """What `budget` / `sizing = "data"` chose (ulmfit.run.budget), and each stage's planned vs actual time."""
    plan = (state.get("_plan") or {}).get("plan")
    if not plan:
        return None
    actual = {
        n: state[n].get("seconds")
        for n in state
        if not n.startswith("_") and n.split("-")[0] in (plan.get("seconds") or {})
    }
    return {
        "budget_seconds": plan.get("budget_s"),
        "lines": plan["lines"],
        "planned_seconds": plan.get("seconds"),
        "actual_seconds": actual,
        "probe_seconds": state["_plan"].get("seconds"),
        "probed": bool(plan.get("probe")),
    }


def write_report(runner) -> dict:
    d = runner.dir
    state = runner.state
    ds = _read(d / G.folder_of(G.PREPARE) / "dataset.json") or {}
    man = _read(d / G.folder_of(G.TOKENIZE) / "manifest.json") or {}
    stages = [
        {
            "stage": n,
            "seconds": state[n].get("seconds"),
            "reused": state[n].get("reused", False),
            "settings": state[n].get("settings", {}),
        }
        for n in runner.order
        if n in state
    ]
    # report.json's keys for the LMs and classifiers (a format scripts read), and the folders they describe
    lm_keys = {
        ("pretrain", False): G.PRETRAIN,
        ("pretrain_bwd", True): G.PRETRAIN,
        ("lm", False): G.FINETUNE_LM,
        ("lm_bwd", True): G.FINETUNE_LM,
    }
    lms = {n: _lm_summary(d / f) for (n, bwd), k in lm_keys.items() if (d / (f := G.folder_of(k, bwd))).exists()}
    clas_keys = {
        "forward": G.folder_of(G.CLASSIFIER),
        "backward": G.folder_of(G.CLASSIFIER, True),
        "self-trained": G.folder_of(G.SELF_TRAIN),
    }
    clas = {n: _clas_summary(d / f) for n, f in clas_keys.items() if (d / f / "history.json").exists()}
    st = _read(d / G.folder_of(G.SELF_TRAIN) / "self_train.json")
    ev = _read(d / G.folder_of(G.EVALUATE) / "evaluation.json") or {}
    baseline = _read(d / G.folder_of(G.BASELINE) / "baseline.json")
    lf_dir = G.folder_of(G.LR_FIND)
    lf = _read(d / lf_dir / "lr_find.json")
    lr_find = None
    if lf:
        lr_find = {k: lf.get(k) for k in ("suggested", "steepest", "min_div10", "steps_run")}
        lr_find["plot"] = f"{lf_dir}/lr_find.png" if (d / lf_dir / "lr_find.png").exists() else None
    report = {
        "name": runner.cfg.get("name"),
        "run_dir": str(d),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "data": {
            "n_docs": ds.get("n_docs"),
            "splits": ds.get("splits"),
            "classes": ds.get("classes"),
            "class_counts": ds.get("class_counts"),
            "skipped": ds.get("skipped"),
        },
        "tokens": {k: man.get(k) for k in ("vocab_size", "n_tokens", "unk_rate", "tokenizer")},
        "lr_find": lr_find,
        "language_models": {k: v for k, v in lms.items() if v},
        "classifiers": clas,
        "evaluation": ev,
        "accuracy": ev.get("accuracy"),
        "macro_f1": ev.get("macro_f1"),
        "self_training": st
        and {k: st.get(k) for k in ("labelled", "pool", "per_class", "teacher_weight", "rounds", "seconds")},
        "baseline": baseline,
        "verdict": verdict(
            clas, baseline, best=bool(runner.settings(G.CLASSIFIER.section).valid_frac), blend=ev.get("blend")
        ),
        "stages": stages,
        "total_seconds": round(sum(s["seconds"] or 0 for s in stages), 1),
        "sizing": _sizing(state),
        "backward": (state.get("_backward") or {}).get("line"),  # [classifier] backwards = "auto": what it chose
        "hardware": hardware(),
        "versions": versions(),
        "config": runner.cfg,
    }
    write_json(d / "report.json", report)
    write_text(d / "report.md", render(report))
    return report


def _render_sizing(z, run_seconds) -> list[str]:
    L = ["## Schedule", ""]
    probe = f"this machine's measured speed (a {z.get('probe_seconds') or 0:.0f} s probe)"
    if z.get("budget_seconds"):
        took = (
            f"the run took {run_seconds / 60:.1f} min ({100 * run_seconds / z['budget_seconds']:.0f} % of it)"
            if run_seconds
            else "the run did not finish"
        )
        L += [f"Budget {z['budget_seconds'] / 60:g} min: {took}. Sized from {probe}:", ""]
    elif z.get("probed"):  # no run budget, but a stage's own (text-cpu's LM): the probe sized that stage
        L += [f"Sized to the data, a stage with its own time budget to {probe}:", ""]
    else:
        L += ["Sized to the data:", ""]
    L += [f"- {line}" for line in z["lines"]]
    if z.get("planned_seconds"):
        L += ["", "| stage | planned | actual |", "|---|---|---|"]
        for name, planned in z["planned_seconds"].items():
            got = [v for k, v in (z.get("actual_seconds") or {}).items() if k.split("-")[0] == name]
            L.append(
                f"| {name} | {planned / 60:.1f} min | "
                + (" + ".join(f"{v / 60:.1f} min" for v in got if v is not None) or "–")
                + " |"
            )
    return L + [""]


def _headline(r) -> list:
    L: list = []
    if r.get("accuracy") is not None:
        ens = " (forward + backward ensemble)" if len(r["evaluation"].get("models") or []) > 1 else ""
        split = r["evaluation"].get("split") or "test"
        kind = "accuracy" if "confusion_matrix" in r["evaluation"] else "exact-match accuracy"  # multi-label
        bl = r["evaluation"].get("blend")
        if bl:
            L += [
                f"**{split.capitalize()} {kind} {100 * bl['accuracy']:.2f} %**, macro-F1 {_fmt(bl.get('macro_f1'))} "
                f"on {r['evaluation'].get('n', '?')} documents: ULMFiT{ens} blended with the TF-IDF baseline "
                f"(weight {bl['weight']:.2f} on ULMFiT, {bl['weight_chosen']}). On their own: ULMFiT "
                f"{100 * r['accuracy']:.2f} % (macro-F1 {_fmt(r.get('macro_f1'))}), the baseline "
                f"{100 * bl['tfidf_accuracy']:.2f} %.",
                "",
            ]
        else:
            L += [
                f"**{split.capitalize()} {kind} {100 * r['accuracy']:.2f} %**, "
                f"macro-F1 {_fmt(r.get('macro_f1'))}{ens} on {r['evaluation'].get('n', '?')} documents.",
                "",
            ]
    return L


def _baseline_line(r) -> list:
    L: list = []
    kind = "accuracy" if "confusion_matrix" in (r["evaluation"] or {}) else "exact-match accuracy"  # multi-label
    b = r.get("baseline")
    if b:
        valid = f" (validation {100 * b['valid']['accuracy']:.2f} %)" if b.get("valid") else ""
        L += [
            f"Without the language model — {b['model']} on the same training documents: {b['split']} {kind} "
            f"{100 * b['accuracy']:.2f} %, macro-F1 {_fmt(b['macro_f1'])}{valid}, in {b['seconds']:.0f} s.",
            "",
        ]
    return L


def _verdict_and_sizing(r) -> list:
    L: list = []
    if r.get("verdict"):
        L += [f"**{r['verdict']}**" if "NOT" in r["verdict"] else r["verdict"], ""]
    if r.get("sizing"):
        L += _render_sizing(r["sizing"], r["total_seconds"] + (r["sizing"].get("probe_seconds") or 0))
    if r.get("backward"):
        L += [r["backward"][0].upper() + r["backward"][1:] + ".", ""]
    return L


def _data(r) -> list:
    L: list = []
    dd, tk = r["data"], r["tokens"]
    L += [
        "## Data",
        "",
        f"- documents: {dd.get('n_docs')}; splits: "
        + ", ".join(f"{k} {v}" for k, v in (dd.get("splits") or {}).items()),
        f"- classes: {dd.get('classes')}; per split: {dd.get('class_counts')}",
        f"- skipped: {dd.get('skipped') or 'nothing'}",
        f"- vocab: {tk.get('vocab_size')} tokens ({(tk.get('tokenizer') or {}).get('backend')}), "
        f"{tk.get('n_tokens')} tokens in all, unknown rate {tk.get('unk_rate')}",
        "",
    ]
    return L


def _lr_find(r) -> list:
    L: list = []
    if r.get("lr_find"):
        lf = r["lr_find"]
        L += [
            "## Learning-rate finder (language model)",
            "",
            f"Suggested lr {lf['suggested']:.2g} (steepest descent of the smoothed loss; a tenth of the lr at the "
            f"minimum: {lf['min_div10']:.2g}) from a sweep of {lf['steps_run']} steps. The run's schedule is "
            "set in the config; this is a check that its lr is in a sensible range.",
            "",
        ]
        if lf.get("plot"):
            L += [f"![lr finder]({lf['plot']})", ""]
    return L


def _language_models(r) -> list:
    L: list = []
    if r["language_models"]:
        L += [
            "## Language models",
            "",
            "| model | epoch | step | train loss | valid loss | accuracy | perplexity |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, lm in r["language_models"].items():
            for e in lm["epochs"]:
                L.append(
                    f"| {name} | {e.get('epoch')}{' (cut)' if e.get('partial') else ''} | {e.get('step')} | "
                    f"{_fmt(e.get('train_loss'))} | {_fmt(e.get('valid_loss'))} | {_fmt(e.get('accuracy'))} | "
                    f"{_fmt(e.get('perplexity'), 1)} |"
                )
        L.append("")
        L += [f"![{n} training curve]({lm['curve']})" for n, lm in r["language_models"].items() if lm["curve"]]
        L.append("")
    return L


def _classifiers(r) -> list:
    L: list = []
    if r["classifiers"]:
        L += ["## Classifiers (validation during training)", ""]
        L += [f"Validated on: {c['valid']} ({name})." for name, c in r["classifiers"].items() if c.get("valid")]
        L += [
            "",
            "| model | stage (phase) | epoch | train loss | valid loss | accuracy | macro-F1 |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, c in r["classifiers"].items():
            for e in c["epochs"]:
                L.append(
                    f"| {name} | {e.get('phase')} | {e.get('epoch')}{' (cut)' if e.get('partial') else ''} | "
                    f"{_fmt(e.get('train_loss'))} | {_fmt(e.get('valid_loss'))} | {_fmt(e.get('accuracy'))} | "
                    f"{_fmt(e.get('macro_f1'))} |"
                )
        L.append("")
        for name, c in r["classifiers"].items():
            L += [f"![{name} {kind}]({c[kind]})" for kind in ("curve", "confusion") if c.get(kind)]
        L.append("")
    return L


def _self_training(r) -> list:
    L: list = []
    if r.get("self_training"):
        st = r["self_training"]
        L += [
            "## Self-training",
            "",
            f"{st['labelled']} labelled documents; each round, the previous round's classifier (blended with the "
            f"TF-IDF baseline, weight {st['teacher_weight']:g} on the classifier) labelled {st['pool']} unlabelled "
            f"ones and a new classifier trained on the labels plus the surest of them "
            f"({st['seconds'] / 60:.1f} min). The self-trained classifier is the one evaluated.",
            "",
            "| round | documents added | agreement with held-back labels | valid accuracy |",
            "|---|---|---|---|",
        ]
        for row in st["rounds"]:
            agree = row.get("agreement_with_held_labels")
            L.append(
                f"| {row['round']} | {row['pseudo_labelled']} | {'–' if agree is None else f'{100 * agree:.1f} %'}"
                f" | {_fmt(row.get('valid_accuracy'))} |"
            )
        L.append("")
    return L


def _evaluation(r) -> list:
    L: list = []
    if r["evaluation"]:
        ev = r["evaluation"]
        L += [
            "## Evaluation",
            "",
            f"- accuracy {_fmt(ev.get('accuracy'))}, macro-F1 {_fmt(ev.get('macro_f1'))}, "
            f"n = {ev.get('n')}, split {ev.get('split') or '–'}",
        ]
        if ev.get("single_accuracy"):
            L.append(
                "- each model alone: "
                + ", ".join(f"{m} {_fmt(a)}" for m, a in zip(("forward", "backward"), ev["single_accuracy"]))
            )
        if "confusion_matrix" in ev:
            L.append(
                f"- classes {ev.get('classes')}; confusion matrix (rows true, columns predicted): "
                f"{ev.get('confusion_matrix')}"
            )
        if ev.get("blend"):
            bl = ev["blend"]
            valid = f"; on those: {100 * bl['valid_accuracy']:.2f} %" if bl.get("valid_accuracy") is not None else ""
            L.append(
                f"- blended with the TF-IDF baseline (`{bl['baseline']}`): accuracy {_fmt(bl['accuracy'])}, "
                f"macro-F1 {_fmt(bl['macro_f1'])}; weight {bl['weight']:.2f} on ULMFiT ({bl['weight_chosen']}"
                f"{valid}); confusion matrix {bl['confusion_matrix']}; the baseline alone "
                f"{_fmt(bl['tfidf_accuracy'])}"
            )
        else:  # multi-label
            L.append("- per-label F1: " + ", ".join(f"{c} {_fmt(f)}" for c, f in zip(ev.get("classes", []), ev["f1"])))
        L.append("")
        ev_dir = G.folder_of(G.EVALUATE)
        if Path(r["run_dir"], ev_dir, "evaluation.png").exists():
            L += [f"![confusion matrix]({ev_dir}/evaluation.png)", ""]
    return L


def _stages_and_machine(r) -> list:
    L: list = []
    L += ["## Stages", "", "| stage | wall time | reused | settings (besides the defaults) |", "|---|---|---|---|"]
    for s in r["stages"]:
        shown = ", ".join(f"{k}={v}" for k, v in s["settings"].items()) or "defaults"
        L.append(f"| {s['stage']} | {_fmt(s['seconds'], 1)} s | {'yes' if s['reused'] else 'no'} | `{shown}` |")
    L += ["", f"Total wall time of the stages: {r['total_seconds']} s.", "", "## Machine", ""]
    L += [f"- {k}: {v}" for k, v in {**r["hardware"], **r["versions"]}.items()]
    L += ["", "## Resolved config", "", "```toml", dump_toml(r["config"]).rstrip(), "```", ""]
    return L


def render(r) -> str:
    L = [f"# ulmfit run: {r['name']}", "", f"{r['date']} · run folder `{r['run_dir']}`", ""]
    for section in (
        _headline,
        _baseline_line,
        _verdict_and_sizing,
        _data,
        _lr_find,
        _language_models,
        _classifiers,
        _self_training,
        _evaluation,
        _stages_and_machine,
    ):
        L += section(r)
    return "\n".join(L)
