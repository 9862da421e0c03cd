"""`ulmfit pretrain`, `finetune-lm`, `evaluate-lm`, `lr-find`: parsers built from the settings classes."""

from __future__ import annotations

import json

from .. import api
from ..settings import EvaluateLMSettings, FinetuneSettings, LRFindLMSettings, PretrainSettings
from .options import Command, add_commands, arg

DATA = arg("data", metavar="DATA", help="a tokenized dataset folder (uses its lm_train and lm_valid splits)")
OUT_LM = arg("--out", required=True, metavar="DIR", help="the language-model folder to write")


def _lr_find(a, s):
    lr = api.lr_find_lm(a.data, a.out, a.pretrained, s)
    print(f"suggested lr: {lr:.2e} (plot and loss per lr in {a.out}/lr_find.png, lr_find.csv)")
    return 0


COMMANDS = [
    Command(
        "pretrain",
        "train a language model from scratch on a tokenized corpus",
        "Train a language model from scratch (ULMFiT stage 1) on the lm_train split of a tokenized corpus, "
        "validating on lm_valid. Writes a language-model folder to --out after every epoch, with log.csv, "
        "history.json, metrics.json, training_curve.png and a resumable checkpoint.",
        lambda a, s: api.pretrain(a.corpus, a.out, s),
        PretrainSettings,
        [
            arg(
                "corpus",
                metavar="CORPUS",
                nargs="+",
                help="a tokenized dataset folder, a prepared one (tokenized here), or corpus files that "
                "`ulmfit prepare corpus` reads (.jsonl[.xz|.gz] with a text field, .txt): those are prepared and "
                "tokenized into DIR/corpus first (reused when unchanged)",
            ),
            OUT_LM,
        ],
        "example: ulmfit pretrain data/wiki --out models/wiki-lm --arch qrnn --preset cpu --sampled 2048",
    ),
    Command(
        "finetune-lm",
        "fine-tune a pretrained language model on a dataset's text",
        "Fine-tune a pretrained language model on the target dataset (ULMFiT stage 2), as the fast.ai course "
        "does: the pretrained vocab is mapped onto the dataset's (new words start at the mean embedding), then "
        "--frozen-epochs with only the embedding/decoder trainable, then --epochs with everything unfrozen and "
        "discriminative lrs (group k from the top gets lr / lr-div^k). Writes the fine-tuned language-model "
        "folder to --out.",
        lambda a, s: api.finetune_lm(a.data, a.pretrained, a.out, s),
        FinetuneSettings,
        [
            DATA,
            arg(
                "--from",
                dest="pretrained",
                required=True,
                metavar="DIR|NAME",
                help="the pretrained language-model folder, or a shipped model's name (`ulmfit models`)",
            ),
            OUT_LM,
        ],
        "example: ulmfit finetune-lm data/imdb --from en-qrnn --out models/imdb-lm --epochs 2",
    ),
    Command(
        "evaluate-lm",
        "validation loss, accuracy and perplexity of a language model on a dataset",
        "Evaluate a language-model folder on the lm_valid split of a tokenized dataset (the model's vocab is "
        "mapped onto the dataset's as finetune-lm does, so a pretrained model can be measured on a new corpus "
        "before fine-tuning). Prints one JSON line.",
        lambda a, s: print(json.dumps(api.evaluate_lm(a.model, a.data, s))),
        EvaluateLMSettings,
        [
            arg("model", metavar="DIR|NAME", help="a language-model folder, or a shipped model's name"),
            arg("data", metavar="DATA", help="a tokenized dataset folder"),
        ],
    ),
    Command(
        "lr-find",
        "find a learning rate: a short run with an exponentially growing lr",
        "Train a language model for up to --steps batches while the lr grows exponentially from --start to "
        "--end, stopping when the loss diverges. Writes lr_find.csv, lr_find.json and lr_find.png to --out and "
        "prints the suggested lr (steepest descent of the smoothed loss). Weights are not kept.",
        _lr_find,
        LRFindLMSettings,
        [
            DATA,
            arg(
                "--from",
                dest="pretrained",
                metavar="DIR|NAME",
                help="a pretrained language-model folder or shipped model's name (default: a fresh model)",
            ),
            arg("--out", required=True, metavar="DIR", help="folder for lr_find.csv/.json/.png"),
        ],
    ),
]


def register(sub):
    add_commands(sub, COMMANDS)
