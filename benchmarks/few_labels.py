"""The paper's few-label experiment: a classifier from a fine-tuned LM trained on only N labelled documents,
against TF-IDF + logistic regression trained on the same N, both scored on the whole test split.

The language model is fine-tuned on all the texts beforehand (e.g. the `lm` folder of `ulmfit run imdb-cpu`,
fine-tuned on all 100k IMDb texts from the shipped en-qrnn). The N documents are `--limit-train N`'s fixed
random choice, the same for both models; the classifier trains a fixed schedule and its last epoch is scored
(no selection on labels beyond the N). The blend of the two (`--blend-weight`, fixed beforehand: choosing it
would need labels beyond the N) is scored too. With `--self-train K,K`, that classifier is round 0 of
`ulmfit self-train` (the unlabelled reviews, never the test ones, labelled by classifier + TF-IDF, the surest K
per class added per round); its last round is scored too, and so is TF-IDF self-trained the same way (its own
teacher), so that both sides get the unlabelled texts. Prints one JSON line.

Example:
  PYTHONPATH=src python benchmarks/few_labels.py runs/imdb-cpu/data runs/imdb-cpu/lm --sizes 100,1000 --out /tmp/few
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import ulmfit
from ulmfit.settings import BaselineSettings, EvaluateSettings, SelfTrainSettings, TrainClassifierSettings


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", help="a tokenized labelled dataset folder")
    p.add_argument("lm", help="the fine-tuned language-model folder")
    p.add_argument("--sizes", default="100,1000", help="comma-separated numbers of labelled documents")
    p.add_argument("--stages", default="1:4:4e-2,2:4:2e-2,3:4:1e-2,all:8:5e-3", help="classifier stages")
    p.add_argument("--drop-mult", type=float, default=0.15, help="classifier dropout multiplier")
    p.add_argument("--blend-weight", type=float, default=0.5, help="ULMFiT's weight in the blend with the baseline")
    p.add_argument("--self-train", default="", metavar="K,K",
                   help="also self-train: documents per class per round, or shares of the pool (< 1: 0.15,0.4,0.67 "
                        "is self-train's default)")
    p.add_argument("--seed", type=int, default=0, help="seed of the classifiers' training (not of the N labels)")
    p.add_argument("--student-stages", default=SelfTrainSettings.student_stages, help="stages of the rounds")
    p.add_argument("--out", required=True, help="folder for the classifiers")
    a = p.parse_args(argv)
    rows = []
    for n in (int(x) for x in a.sizes.split(",")):
        t0 = time.time()
        self_dir = Path(a.out) / f"self-train-{n}"
        clas = self_dir / "self-train" / "round-0" if a.self_train else Path(a.out) / f"clas-{n}"
        # validation (monitoring only: the last epoch is scored) on 2 % of train held out; the test split unseen
        s = TrainClassifierSettings(limit_train=n, valid_frac=0.02, stages=a.stages, bs=min(32, max(8, n // 8)),
                                    max_len=700, drop_mult=a.drop_mult, seed=a.seed, quiet=True)
        if not (clas / "history.json").exists():
            ulmfit.train_classifier(a.data, clas, lm=a.lm, settings=s)
        base_dir = Path(a.out) / f"baseline-{n}"
        base_dir.mkdir(parents=True, exist_ok=True)
        base = ulmfit.baseline(a.data, BaselineSettings(valid_frac=0.02, limit_train=n, out=str(base_dir), quiet=True))
        ev = ulmfit.evaluate(clas, a.data, EvaluateSettings(blend=str(base_dir), blend_weight=a.blend_weight, quiet=True))
        rows.append({"labels": n, "ulmfit_accuracy": round(ev["accuracy"], 4), "ulmfit_macro_f1": round(ev["macro_f1"], 4),
                     "baseline_accuracy": round(base["accuracy"], 4), "baseline_macro_f1": round(base["macro_f1"], 4),
                     "blend_accuracy": round(ev["blend"]["accuracy"], 4), "blend_weight": a.blend_weight,
                     "test_docs": ev["n"]})
        if a.self_train:
            rows[-1].update(_self_train(a, n, self_dir, base_dir, dataclasses.asdict(s)))
        rows[-1]["seconds"] = round(time.time() - t0, 1)
    print(json.dumps({"benchmark": "few_labels", "data": a.data, "lm": a.lm, "stages": a.stages, "results": rows}))


def _self_train(a, n, out, base_dir, round0):
    """self-train from the round-0 classifier (trained above with the few-label settings; its students train on
    thousands of documents: batches of 32, --student-stages), and TF-IDF self-trained alike."""
    from ulmfit.stages.evaluate import _raw_texts
    from ulmfit.stages.self_train import documents_of, most_confident, per_class_counts
    from ulmfit.tfidf import TfidfModel

    rounds = [float(k) for k in a.self_train.split(",")]
    s = SelfTrainSettings(**{**round0, "bs": 32, "stages": a.stages, "student_stages": a.student_stages,
                             "rounds": rounds})
    res = ulmfit.self_train(a.data, out, a.lm, s)
    ev = ulmfit.evaluate(out, a.data, EvaluateSettings(blend=str(base_dir), blend_weight=a.blend_weight, quiet=True))
    row = {"self_train_rounds": rounds, "self_train_accuracy": round(ev["accuracy"], 4),
           "self_train_macro_f1": round(ev["macro_f1"], 4), "self_train_blend_accuracy": round(ev["blend"]["accuracy"], 4),
           "self_train_teacher_agreement": [r.get("agreement_with_held_labels") for r in res["rounds"][1:]]}
    # TF-IDF self-trained the same way: its own teacher, the same pool and K per round
    store, _, pool = documents_of(a.data, s)
    texts = _raw_texts(Path(a.data), pool)
    teacher, acc = TfidfModel.load(base_dir), []
    for r, k in enumerate(per_class_counts(rounds, len(pool), len(store.classes)), 1):
        pos, cls = most_confident(teacher.predict_proba(texts), k)
        d = out / "tfidf-self-train" / f"round-{r}"
        d.mkdir(parents=True, exist_ok=True)
        base = ulmfit.baseline(a.data, BaselineSettings(valid_frac=0.02, limit_train=n, out=str(d), quiet=True),
                               pseudo=(pool[pos], cls))
        teacher = TfidfModel.load(d)
        acc.append(round(base["accuracy"], 4))
    row["tfidf_self_train_accuracy"] = acc
    return row


if __name__ == "__main__":
    main()
