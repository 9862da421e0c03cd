"""`ulmfit pretrain`, `finetune-lm`, `evaluate-lm`, `lr-find`: parsers built from the settings classes."""

from __future__ import annotations

import json

from ..settings import EvaluateLMSettings, FinetuneSettings, LRFindLMSettings, PretrainSettings
from .options import add_settings, settings_from


def register(sub):
    p = sub.add_parser(
        "pretrain", help="train a language model from scratch on a tokenized corpus",
        description="Train a language model from scratch (ULMFiT stage 1) on the lm_train split of a tokenized "
        "corpus, validating on lm_valid. Writes a language-model folder to --out after every epoch, with log.csv, "
        "history.json, metrics.json, training_curve.png and a resumable checkpoint.",
        epilog="example: ulmfit pretrain data/wiki --out models/wiki-lm --arch qrnn --preset cpu --sampled 2048")
    p.add_argument("corpus", metavar="CORPUS", nargs="+",
                   help="a tokenized dataset folder, a prepared one (tokenized here), or corpus files that "
                   "`ulmfit prepare corpus` reads (.jsonl[.xz|.gz] with a text field, .txt): those are prepared "
                   "and tokenized into DIR/corpus first (reused when unchanged)")
    p.add_argument("--out", required=True, metavar="DIR", help="the language-model folder to write")
    add_settings(p, PretrainSettings)
    p.set_defaults(func=_pretrain)

    p = sub.add_parser(
        "finetune-lm", help="fine-tune a pretrained language model on a dataset's text",
        description="Fine-tune a pretrained language model on the target dataset (ULMFiT stage 2), as the fast.ai "
        "course does: the pretrained vocab is mapped onto the dataset's (new words start at the mean embedding), "
        "then --frozen-epochs with only the embedding/decoder trainable, then --epochs with everything "
        "unfrozen and discriminative lrs (group k from the top gets lr / lr-div^k). Writes the fine-tuned "
        "language-model folder to --out.",
        epilog="example: ulmfit finetune-lm data/imdb --from en-qrnn --out models/imdb-lm --epochs 2")
    p.add_argument("data", metavar="DATA", help="a tokenized dataset folder (uses its lm_train and lm_valid splits)")
    p.add_argument("--from", dest="pretrained", required=True, metavar="DIR|NAME",
                   help="the pretrained language-model folder, or a shipped model's name (`ulmfit models` lists them)")
    p.add_argument("--out", required=True, metavar="DIR", help="the fine-tuned language-model folder to write")
    add_settings(p, FinetuneSettings)
    p.set_defaults(func=_finetune)

    p = sub.add_parser(
        "evaluate-lm", help="validation loss, accuracy and perplexity of a language model on a dataset",
        description="Evaluate a language-model folder on the lm_valid split of a tokenized dataset (the model's "
        "vocab is mapped onto the dataset's as finetune-lm does, so a pretrained model can be measured on a new "
        "corpus before fine-tuning). Prints one JSON line.")
    p.add_argument("model", metavar="DIR|NAME", help="a language-model folder, or a shipped model's name")
    p.add_argument("data", metavar="DATA", help="a tokenized dataset folder")
    add_settings(p, EvaluateLMSettings)
    p.set_defaults(func=_evaluate_lm)

    p = sub.add_parser(
        "lr-find", help="find a learning rate: a short run with an exponentially growing lr",
        description="Train a language model for up to --steps batches while the lr grows exponentially from "
        "--start to --end, stopping when the loss diverges. Writes lr_find.csv, lr_find.json and lr_find.png to "
        "--out and prints the suggested lr (steepest descent of the smoothed loss). Weights are not kept.")
    p.add_argument("data", metavar="DATA", help="a tokenized dataset folder (uses its lm_train split)")
    p.add_argument("--from", dest="pretrained", metavar="DIR|NAME",
                   help="a pretrained language-model folder or shipped model's name (default: a fresh model of --preset)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for lr_find.csv/.json/.png")
    add_settings(p, LRFindLMSettings)
    p.set_defaults(func=_lr_find)


def _pretrain(a):
    from ..api import pretrain

    pretrain(a.corpus, a.out, settings_from(a, PretrainSettings))
    return 0


def _finetune(a):
    from ..api import finetune_lm

    finetune_lm(a.data, a.pretrained, a.out, settings_from(a, FinetuneSettings))
    return 0


def _evaluate_lm(a):
    from ..api import evaluate_lm

    print(json.dumps(evaluate_lm(a.model, a.data, settings_from(a, EvaluateLMSettings))))
    return 0


def _lr_find(a):
    from ..api import lr_find_lm

    lr = lr_find_lm(a.data, a.out, a.pretrained, settings_from(a, LRFindLMSettings))
    print(f"suggested lr: {lr:.2e} (plot and loss per lr in {a.out}/lr_find.png, lr_find.csv)")
    return 0
