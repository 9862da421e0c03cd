"""`ulmfit models` (the shipped language models), `ulmfit generate` (sample from a language model) and
`ulmfit import-fastai` (fastai's weights)."""

from __future__ import annotations

from ..settings import GenerateSettings
from .options import Command, add_commands, arg


def _models(args, _):
    import json

    from ..pretrained import describe, shipped_names

    rows = [describe(n) for n in shipped_names()]
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return 0
    if not rows:
        print("no language models are shipped with this installation")
        return 0
    cols = [
        ("name", "name"),
        ("arch", "arch"),
        ("emb/hid/layers", "size"),
        ("vocab", "vocab"),
        ("direction", "backwards"),
        ("tokens seen", "tokens_seen"),
        ("valid ppl", "valid_perplexity"),
    ]
    table = [
        [
            ("backwards" if r[k] else "forward")
            if k == "backwards"
            else (f"{r[k]:,}" if isinstance(r.get(k), int) else str(r.get(k, "-")))
            for _, k in cols
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, (h, _) in enumerate(cols)]
    print("  ".join(h.ljust(w) for (h, _), w in zip(cols, widths)))
    for t in table:
        print("  ".join(v.ljust(w) for v, w in zip(t, widths)))
    print(f"\nmodel cards: {rows[0]['path'].rsplit('/', 1)[0]}/<name>/README.md")
    return 0


def _import_fastai(a, _):
    from ..transfer import import_fastai_folder

    cfg = import_fastai_folder(a.pth, a.itos, a.out)
    print(f"wrote {a.out}: {cfg.n_layers} layers, emb {cfg.emb_size}, hidden {cfg.n_hid}, vocab {cfg.vocab_size}")


def _generate(a, s):
    from ..api import generate

    print(generate(a.model_dir, a.prompt, s))


COMMANDS = [
    Command(
        "models",
        "list the pretrained language models shipped with ulmfit",
        "List the language models shipped with ulmfit: each name works wherever a language-model folder is "
        "accepted (finetune-lm --from NAME, evaluate-lm, generate, [pretrain] folder = NAME in a run config). "
        "Their model cards (README.md in each folder) say how they were made.",
        _models,
        None,
        [arg("--json", action="store_true", help="one JSON object per model instead of a table")],
    ),
    Command(
        "generate",
        "sample text from a language-model folder",
        "Continue a prompt with words sampled from a language model (a quick look at what it learnt).",
        _generate,
        GenerateSettings,
        [
            arg(
                "model_dir",
                metavar="DIR|NAME",
                help="language-model folder (config.json, model.safetensors, vocab), or a shipped model's name",
            ),
            arg("prompt", help="text to continue (tokenized with the folder's tokenizer)"),
        ],
    ),
    Command(
        "import-fastai",
        "convert fastai's published AWD-LSTM weights to a model folder",
        "Convert a fastai AWD-LSTM language model (v2 lstm_fwd.pth + vocab, v1 fwd_wt103.h5 + itos_wt103.pkl) into "
        "an ulmfit language-model folder, without executing any pickled code.",
        _import_fastai,
        None,
        [
            arg("pth", metavar="PTH", help="fastai weights file (a torch-saved state dict)"),
            arg("itos", metavar="ITOS", help="its vocab: pickled list (.pkl), JSON list, or one token per line"),
            arg("--out", required=True, metavar="DIR", help="model folder to write"),
        ],
    ),
]


def register(sub):
    add_commands(sub, COMMANDS)
