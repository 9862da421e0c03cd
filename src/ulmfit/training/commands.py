"""`ulmfit pretrain`, `ulmfit finetune-lm` and `ulmfit lr-find`: language-model training commands.

The output folder of pretrain / finetune-lm is a language-model folder (config.json, model.safetensors,
vocab.json, tokenizer.json) that also holds the training files: log.csv, history.json, metrics.json,
training_curve.png and checkpoint.safetensors (for --resume). Heavy imports happen inside the
command functions so that `ulmfit --help` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

PRESETS = ("paper", "small", "cpu", "tiny")  # ulmfit.models.config.PRESETS (not imported: it would load torch)
ARCHS = ("awd_lstm", "qrnn")  # ulmfit.models.registry.ARCHS (likewise)


def _floats(text):
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _add_data_args(p):
    g = p.add_argument_group("data")
    g.add_argument("--valid-tokens", type=int, metavar="N",
                   help="validate on the first N tokens of lm_valid only (default: all; a cap keeps CPU runs short)")
    g.add_argument("--bs", type=int, default=64, metavar="N", help="batch size: parallel text streams (default 64)")
    g.add_argument("--bptt", type=int, default=70, metavar="N",
                   help="mean sequence length for backprop through time; varied per batch (default 70)")
    g.add_argument("--sampled", type=int, default=0, metavar="N",
                   help="train with a sampled softmax of N words per step instead of the full vocab (e.g. 2048: "
                   "about 10x faster per token with a 60k vocab on a CPU); validation stays exact (default 0: off)")


def _add_train_args(p, lr, schedule, wd=0.01):
    g = p.add_argument_group("optimisation")
    if lr is not None:
        g.add_argument("--lr", type=float, default=lr, metavar="LR", help=f"peak learning rate (default {lr:g})")
    g.add_argument("--schedule", choices=["one_cycle", "stlr", "constant"], default=schedule,
                   help=f"lr schedule of each phase: fastai's one-cycle, the paper's slanted triangular lr "
                   f"(cut_frac 0.1, ratio 32), or constant (default {schedule})")
    g.add_argument("--wd", type=float, default=wd, help=f"decoupled weight decay of AdamW (default {wd:g})")
    g.add_argument("--moms", type=_floats, default=(0.8, 0.7, 0.8), metavar="M0,M1,M2",
                   help="one-cycle Adam beta1 cycle: start, middle, end (default 0.8,0.7,0.8 as fastai's text learners)")
    g.add_argument("--betas", type=_floats, default=(0.9, 0.99), metavar="B1,B2",
                   help="Adam betas; beta1 is cycled by --moms under one-cycle (default 0.9,0.99)")
    g.add_argument("--clip", type=float, default=0.4, help="gradient norm clipping, 0 for none (default 0.4)")
    g.add_argument("--alpha", type=float, default=2.0, help="AR: activation regularization weight (default 2)")
    g.add_argument("--beta", type=float, default=1.0, help="TAR: temporal activation regularization weight (default 1)")
    g.add_argument("--seed", type=int, default=0, help="random seed of initialisation, dropout and batches (default 0)")


def _add_run_args(p, training=True):
    g = p.add_argument_group("run control")
    if not training:
        g.add_argument("--device", help="torch device, e.g. cpu or cuda:0 (default: cuda if available)")
        g.add_argument("--threads", type=int, metavar="N", help="CPU threads (default: all cores)")
        g.add_argument("--quiet", action="store_true", help="no progress bar")
        return
    g.add_argument("--max-minutes", type=float, metavar="M",
                   help="stop after M minutes; the epoch cut short is validated and saved, --resume continues it")
    g.add_argument("--ckpt-every", type=int, default=0, metavar="N",
                   help="also write a checkpoint every N steps (default: at epoch ends only)")
    g.add_argument("--resume", action="store_true",
                   help="continue from the checkpoint in --out (same settings); exact, as if never stopped")
    g.add_argument("--device", help="torch device, e.g. cpu or cuda:0 (default: cuda if available)")
    g.add_argument("--threads", type=int, metavar="N", help="CPU threads (default: all cores)")
    g.add_argument("--fp32", action="store_true",
                   help="compute in float32 only (default: bf16 autocast on GPUs and on CPUs where it is faster)")
    g.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")


def register(sub):
    p = sub.add_parser(
        "pretrain", help="train an AWD-LSTM language model from scratch on a tokenized corpus",
        description="Train an AWD-LSTM language model from scratch (ULMFiT stage 1) on the lm_train split of a "
        "tokenized corpus, validating on lm_valid. Writes a language-model folder to --out after every epoch, "
        "with log.csv, history.json, metrics.json, training_curve.png and a resumable checkpoint.",
        epilog="example: ulmfit pretrain data/wiki --out models/wiki-lm --preset small --epochs 10 --max-minutes 600",
    )
    p.add_argument("corpus", metavar="CORPUS", nargs="+",
                   help="a tokenized dataset folder, a prepared one (tokenized here), or corpus files that "
                   "`ulmfit prepare corpus` reads (.jsonl[.xz|.gz] with a text field, .txt): those are prepared "
                   "and tokenized into DIR/corpus first (reused when unchanged)")
    p.add_argument("--out", required=True, metavar="DIR", help="the language-model folder to write")
    g = p.add_argument_group("corpus files (when CORPUS is not a tokenized folder)")
    g.add_argument("--max-words", type=int, metavar="N", help="read only about the first N words of the files")
    g.add_argument("--max-vocab", type=int, default=60000, metavar="N", help="vocab size (default 60000)")
    g.add_argument("--min-freq", type=int, default=3, metavar="N", help="least token count in the vocab (default 3)")
    g.add_argument("--tokenizer", choices=["spacy", "sentencepiece"], default="spacy", help="tokenizer backend")
    p.add_argument("--arch", choices=ARCHS, default="awd_lstm",
                   help="encoder architecture: awd_lstm, or qrnn (several times faster on a CPU with bf16) (default awd_lstm)")
    p.add_argument("--preset", choices=PRESETS, default="small",
                   help="model size: paper (400/1150/3 layers), small (200/600/3, CPU-friendly), cpu (128/384/3, for 2-core CPUs), tiny (tests) (default small)")
    p.add_argument("--drop-mult", type=float, default=1.0, help="multiplier of all the preset's dropouts (default 1)")
    p.add_argument("--epochs", type=int, default=10, metavar="N", help="epochs (default 10)")
    p.add_argument("--max-steps", type=int, metavar="N",
                   help="train at most N steps (the last epoch is cut short); the lr schedule is fitted to them")
    p.add_argument("--backwards", action="store_true", help="train on the reversed text (for a backwards model)")
    _add_data_args(p)
    _add_train_args(p, lr=5e-3, schedule="one_cycle")
    _add_run_args(p)
    p.set_defaults(func=_pretrain)

    p = sub.add_parser(
        "finetune-lm", help="fine-tune a pretrained language model on a dataset's text",
        description="Fine-tune a pretrained language model on the target dataset (ULMFiT stage 2), as the fast.ai "
        "course does: the pretrained vocab is mapped onto the dataset's (new words start at the mean embedding), "
        "then --frozen-epochs with only the embedding/decoder trainable, then --epochs with everything "
        "unfrozen and discriminative lrs (group k from the top gets lr / lr-div^k). Writes the fine-tuned "
        "language-model folder to --out, with encoder.safetensors (the encoder weights) for the classifier.",
        epilog="example: ulmfit finetune-lm data/imdb --from models/wt103 --out models/imdb-lm --epochs 10",
    )
    p.add_argument("data", metavar="DATA", help="a tokenized dataset folder (uses its lm_train and lm_valid splits)")
    p.add_argument("--from", dest="pretrained", required=True, metavar="DIR|NAME",
                   help="the pretrained language-model folder, or a shipped model's name (`ulmfit models` lists them)")
    p.add_argument("--out", required=True, metavar="DIR", help="the fine-tuned language-model folder to write")
    p.add_argument("--frozen-epochs", type=int, default=1, metavar="N",
                   help="epochs training only the embedding/decoder group (default 1; 0 skips the phase)")
    p.add_argument("--frozen-lr", type=float, default=2e-2, metavar="LR", help="peak lr of the frozen phase (default 2e-2)")
    p.add_argument("--epochs", type=int, default=10, metavar="N", help="epochs with everything unfrozen (default 10)")
    p.add_argument("--lr-div", type=float, default=2.6,
                   help="discriminative lr factor between layer groups when unfrozen; 1 for one lr (default 2.6)")
    p.add_argument("--drop-mult", type=float, default=0.3,
                   help="multiplier of the model's dropouts while fine-tuning (default 0.3, as the fast.ai course)")
    p.add_argument("--max-steps", type=int, metavar="N",
                   help="stop the unfrozen phase after N steps (its lr schedule is fitted to them)")
    p.add_argument("--frozen-steps", type=int, metavar="N",
                   help="stop the frozen phase after N steps (its lr schedule is fitted to them)")
    _add_data_args(p)
    _add_train_args(p, lr=2e-3, schedule="one_cycle")
    _add_run_args(p)
    p.set_defaults(func=_finetune)

    p = sub.add_parser(
        "evaluate-lm", help="validation loss, accuracy and perplexity of a language model on a dataset",
        description="Evaluate a language-model folder on the lm_valid split of a tokenized dataset (the model's "
        "vocab is mapped onto the dataset's as finetune-lm does, so a pretrained model can be measured on a new "
        "corpus before fine-tuning). Prints one JSON line.")
    p.add_argument("model", metavar="DIR|NAME", help="a language-model folder, or a shipped model's name")
    p.add_argument("data", metavar="DATA", help="a tokenized dataset folder")
    p.add_argument("--split", default="lm_valid", help="the split to measure (default lm_valid)")
    _add_data_args(p)
    _add_run_args(p, training=False)
    p.set_defaults(func=_evaluate_lm)

    p = sub.add_parser(
        "lr-find", help="find a learning rate: a short run with an exponentially growing lr",
        description="Train a language model for up to --steps batches while the lr grows exponentially from "
        "--start to --end, stopping when the loss diverges. Writes lr_find.csv, lr_find.json and lr_find.png to "
        "--out and prints the suggested lr (steepest descent of the smoothed loss). Weights are not kept.",
    )
    p.add_argument("data", metavar="DATA", help="a tokenized dataset folder (uses its lm_train split)")
    p.add_argument("--from", dest="pretrained", metavar="DIR|NAME",
                   help="a pretrained language-model folder or shipped model's name (default: a fresh model of --preset)")
    p.add_argument("--arch", choices=ARCHS, default="awd_lstm", help="encoder architecture without --from (default awd_lstm)")
    p.add_argument("--preset", choices=PRESETS, default="small", help="model size without --from (default small)")
    p.add_argument("--frozen", action="store_true", help="only the embedding/decoder group trains (the frozen phase)")
    p.add_argument("--drop-mult", type=float, help="dropout multiplier (default: 1 fresh, 0.3 with --from)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for lr_find.csv/.json/.png")
    p.add_argument("--start", type=float, default=1e-7, help="first lr (default 1e-7)")
    p.add_argument("--end", type=float, default=10.0, help="last lr (default 10)")
    p.add_argument("--steps", type=int, default=100, help="most batches to run (default 100)")
    p.add_argument("--backwards", action="store_true", help="a backwards model (fresh model only; --from knows)")
    _add_data_args(p)
    _add_train_args(p, lr=None, schedule="one_cycle")
    _add_run_args(p, training=False)
    p.set_defaults(func=_lr_find)


# ---------------------------------------------------------------------------------------------


def open_lm_store(path):
    """The tokenized store at `path`, with a clear error when it is not one yet."""
    from ..errors import UlmfitError
    from ..text.store import TokenStore

    path = Path(path)
    if not (path / "tokens" / "manifest.json").exists():
        raise UlmfitError(
            f"{path} is not a tokenized dataset folder: run `ulmfit prepare corpus FILES --out {path} && "
            f"ulmfit tokenize {path}` first (or `ulmfit prepare imdb/table/folder ...` for labelled data)")
    store = TokenStore(path)
    for name in ("lm_train", "lm_valid"):
        if not store.has_split(name):
            raise UlmfitError(f"{path} has no {name} split (it has: {', '.join(store.split_names)}); "
                              "prepare it again with `ulmfit prepare ... --lm-valid-frac`")
    return store


def _valid_stream(store, args):
    stream = store.split("lm_valid").stream()
    n = getattr(args, "valid_tokens", None)
    return stream[:n] if n else stream


def resolve_corpus(paths, out, max_words=None, max_vocab=60000, min_freq=3, tokenizer="spacy", quiet=False):
    """CORPUS arguments -> a tokenized store folder: used as is, tokenized, or prepared + tokenized."""
    from ..data.table import prepare_corpus
    from ..text.pipeline import tokenize_dataset

    paths = [Path(p) for p in paths]
    if len(paths) == 1 and paths[0].is_dir():
        if (paths[0] / "dataset.json").exists() and not (paths[0] / "tokens" / "manifest.json").exists():
            tokenize_dataset(paths[0], backend=tokenizer, max_vocab=max_vocab, min_freq=min_freq, progress=not quiet)
        return paths[0]
    target = Path(out) / "corpus"
    prepare_corpus(paths, target, max_words=max_words, progress=not quiet)
    tokenize_dataset(target, backend=tokenizer, max_vocab=max_vocab, min_freq=min_freq, progress=not quiet)
    return target


class _StoreVocab:
    """What a model folder needs to encode text like the store did (tokenizer.json + vocab.json)."""

    def __init__(self, store):
        self.store = store

    def save(self, folder):
        from ..text.encoder import TextEncoder

        TextEncoder.from_store(self.store).save(folder)


def _train_config(args, **kw):
    from .loop import TrainConfig

    return TrainConfig(schedule=args.schedule, wd=args.wd, betas=tuple(args.betas), moms=tuple(args.moms),
                       clip=args.clip or None, seed=args.seed, ckpt_every=getattr(args, "ckpt_every", 0),
                       max_minutes=getattr(args, "max_minutes", None), device=args.device, threads=args.threads,
                       bf16=not getattr(args, "fp32", False), progress=not args.quiet, **kw)


def _check_args(args):
    from ..errors import UlmfitError

    for name in ("bs", "bptt", "epochs", "max_steps", "steps", "ckpt_every", "frozen_epochs"):
        v = getattr(args, name, None)
        if v is not None and (v < 0 or (v == 0 and name not in ("ckpt_every", "frozen_epochs", "epochs"))):
            raise UlmfitError(f"--{name.replace('_', '-')} must be positive, got {v}")
    if getattr(args, "lr", 1) <= 0:
        raise UlmfitError(f"--lr must be positive, got {args.lr}")
    if len(args.moms) != 3 or len(args.betas) != 2:
        raise UlmfitError("--moms takes three numbers and --betas two")


def _save_lm(out, model, config, store, row, encoder_file=False):
    """The language-model folder (+ metrics.json, + encoder.safetensors for the classifier)."""
    from safetensors.torch import save_model as save_tensors

    from ..artifacts import save_model
    from ..io import atomic_path, write_json

    model_cpu_state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_model(out, model_cpu_state, config, _StoreVocab(store))
    write_json(Path(out) / "metrics.json", row)
    if encoder_file:
        with atomic_path(Path(out) / "encoder.safetensors") as tmp:
            save_tensors(model.encoder, str(tmp), metadata={"format": "pt", "kind": "awd_lstm_encoder"})


def _warn_existing(out, resume, quiet):
    from .loop import CKPT

    if not resume and (Path(out) / CKPT).exists() and not quiet:
        print(f"note: {out} holds a training checkpoint; starting afresh (--resume continues it)")


def _report(history, out):
    if history:
        last = history[-1]
        print(f"wrote {out}: valid loss {last['valid_loss']:.4f}, perplexity {last.get('perplexity', float('nan')):.2f}, "
              f"accuracy {last.get('accuracy', float('nan')):.4f} after {last['step']} steps"
              + (" (stopped early; --resume continues)" if last.get("partial") else ""))
    return 0


def _pretrain(args):
    import dataclasses

    import torch

    from ..models.language_model import LanguageModel
    from ..models.config import preset
    from .lm_task import LMTask
    from .loop import Phase, fit

    _check_args(args)
    corpus = resolve_corpus(args.corpus, args.out, args.max_words, args.max_vocab, args.min_freq, args.tokenizer,
                            args.quiet)
    store = open_lm_store(corpus)
    torch.manual_seed(args.seed)
    mcfg = preset(args.preset, vocab_size=len(store.vocab), drop_mult=args.drop_mult, arch=args.arch)
    model = LanguageModel(mcfg)
    task = LMTask(model, store.split("lm_train").stream(), _valid_stream(store, args), args.bs, args.bptt,
                  backwards=args.backwards, alpha=args.alpha, beta=args.beta, sampled=args.sampled)
    # From scratch every layer is equally new: one lr for all groups.
    phases = [Phase(epochs=args.epochs, lr=args.lr, steps=args.max_steps, lr_div=1.0)]
    cfg = _train_config(args)
    config = {"kind": "language_model", "model": dataclasses.asdict(mcfg), "backwards": args.backwards,
              "training": {"stage": "pretrain", "corpus": str(corpus), "vocab_hash": store.vocab.hash,
                           "bs": args.bs, "bptt": args.bptt, "sampled": args.sampled, "phases": [dataclasses.asdict(p) for p in phases],
                           "train": dataclasses.asdict(cfg)}}
    if not args.quiet:
        n_params = sum(p.numel() for p in model.parameters())
        print(f"pretraining a {args.preset} LM ({n_params / 1e6:.1f}M parameters, vocab {len(store.vocab)}) on "
              f"{len(task.train.stream):,} tokens, validating on {len(task.valid.stream):,}")
    _warn_existing(args.out, args.resume, args.quiet)
    history = fit(task, phases, cfg, args.out, resume=args.resume,
                  on_epoch_end=lambda m, row: _save_lm(args.out, m, config, store, row))
    return _report(history, args.out)


def load_pretrained_lm(folder, store, drop_mult=None):
    """A pretrained LM folder (or a shipped model's name) re-indexed onto `store`'s vocab
    -> (LanguageModel, ModelConfig, config)."""
    import dataclasses

    from ..artifacts import load_model, model_config
    from ..errors import UlmfitError
    from ..models.language_model import LanguageModel
    from ..text.vocab import Vocab
    from ..transfer import map_vocab

    from ..pretrained import resolve_lm

    folder = resolve_lm(folder)
    config, state_dict, _ = load_model(folder, with_encoder=False)
    if config.get("kind", "language_model") != "language_model":
        raise UlmfitError(f"{folder} holds a {config.get('kind')}, not a language model")
    old_itos = Vocab.load(Path(folder) / "vocab.json").itos
    new_itos = store.vocab.itos
    state_dict, n_matched = map_vocab(state_dict, old_itos, new_itos)
    mcfg = dataclasses.replace(model_config(config), vocab_size=len(new_itos))
    if drop_mult is not None:
        mcfg = dataclasses.replace(mcfg, drop_mult=drop_mult)
    model = LanguageModel(mcfg)
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as e:
        raise UlmfitError(f"the weights in {folder} do not fit its config.json: {e}") from None
    # Said even with --quiet: a low count means the wrong pretrained model or tokenizer.
    print(f"vocab: {n_matched:,} of the dataset's {len(new_itos):,} tokens found in the pretrained vocab "
          f"({len(old_itos):,} tokens); the other {len(new_itos) - n_matched:,} start at the mean embedding")
    return model, mcfg, config


def _finetune(args):
    import dataclasses

    import torch

    from ..errors import UlmfitError
    from .lm_task import LMTask
    from .loop import Phase, fit

    _check_args(args)
    if args.frozen_epochs == 0 and args.epochs == 0:
        raise UlmfitError("nothing to train: --frozen-epochs and --epochs are both 0")
    store = open_lm_store(args.data)
    torch.manual_seed(args.seed)
    model, mcfg, pre_config = load_pretrained_lm(args.pretrained, store, args.drop_mult)
    backwards = bool(pre_config.get("backwards", False))  # a backwards LM keeps reading backwards
    task = LMTask(model, store.split("lm_train").stream(), _valid_stream(store, args), args.bs, args.bptt,
                  backwards=backwards, alpha=args.alpha, beta=args.beta, sampled=args.sampled)
    phases = []
    if args.frozen_epochs:
        phases.append(Phase(epochs=args.frozen_epochs, lr=args.frozen_lr, freeze_to=-1, steps=args.frozen_steps))
    if args.epochs:
        phases.append(Phase(epochs=args.epochs, lr=args.lr, freeze_to=0, steps=args.max_steps, lr_div=args.lr_div))
    cfg = _train_config(args, lr_div=args.lr_div)
    config = {"kind": "language_model", "model": dataclasses.asdict(mcfg), "backwards": backwards,
              "training": {"stage": "finetune-lm", "data": str(args.data), "pretrained": str(args.pretrained),
                           "vocab_hash": store.vocab.hash, "bs": args.bs, "bptt": args.bptt, "sampled": args.sampled,
                           "phases": [dataclasses.asdict(p) for p in phases], "train": dataclasses.asdict(cfg)}}
    _warn_existing(args.out, args.resume, args.quiet)
    history = fit(task, phases, cfg, args.out, resume=args.resume,
                  on_epoch_end=lambda m, row: _save_lm(args.out, m, config, store, row, encoder_file=True))
    return _report(history, args.out)


def _evaluate_lm(args):
    import json

    from .lm_task import LMTask
    from .loop import TrainConfig, pick_device, validate

    store = open_lm_store(args.data)
    model, _, config = load_pretrained_lm(args.model, store)
    stream = store.split(args.split).stream()
    if args.valid_tokens:
        stream = stream[: args.valid_tokens]
    task = LMTask(model, stream, stream, args.bs, args.bptt, backwards=bool(config.get("backwards", False)))
    cfg = TrainConfig(device=args.device, threads=args.threads, progress=False)
    device = pick_device(cfg)
    metrics = validate(task, model.to(device), device, cfg)
    print(json.dumps({"model": str(args.model), "data": str(args.data), "split": args.split,
                      "tokens": int(len(stream)), **{k: round(float(v), 4) for k, v in metrics.items()}}))
    return 0


def _lr_find(args):
    import torch

    from ..models.language_model import LanguageModel
    from ..models.config import preset
    from .lm_task import LMTask
    from .lr_find import lr_find
    from .optim import freeze_to

    _check_args(args)
    store = open_lm_store(args.data)
    torch.manual_seed(args.seed)
    backwards = args.backwards
    if args.pretrained:
        model, _, pre_config = load_pretrained_lm(args.pretrained, store,
                                                  0.3 if args.drop_mult is None else args.drop_mult)
        backwards = bool(pre_config.get("backwards", False))
    else:
        model = LanguageModel(preset(args.preset, vocab_size=len(store.vocab), drop_mult=args.drop_mult or 1.0,
                                     arch=args.arch))
    if args.frozen:
        freeze_to(model, -1)
    task = LMTask(model, store.split("lm_train").stream(), _valid_stream(store, args), args.bs, args.bptt,
                  backwards=backwards, alpha=args.alpha, beta=args.beta, sampled=args.sampled)
    lr = lr_find(task, _train_config(args), args.out, start=args.start, end=args.end, steps=args.steps)
    print(f"suggested lr: {lr:.2e} (plot and loss per lr in {args.out}/lr_find.png, lr_find.csv)")
    return 0
