"""The language-model stages: pretrain, finetune-lm, evaluate-lm, lr-find (settings in `ulmfit.settings`).

The output folder of pretrain / finetune-lm is a language-model folder (config.json, model.safetensors,
vocab.json, tokenizer.json) that also holds the training files: log.csv, history.json, metrics.json,
training_curve.png and checkpoint.safetensors (for resume).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..errors import UlmfitError
from ..io import check_not_an_input, check_output_dir
from .common import train_config
from ..settings import EvaluateLMSettings, FinetuneSettings, LRFindLMSettings, PretrainSettings, identity


def open_lm_store(path):
    """The tokenized store at `path`, with a clear error when it is not one yet."""
    from ..text.store import TokenStore

    path = Path(path)
    if not (path / "tokens" / "manifest.json").exists():
        raise UlmfitError(
            f"{path} is not a tokenized dataset folder: run `ulmfit prepare corpus FILES --out {path} && "
            f"ulmfit tokenize {path}` first (or `ulmfit prepare imdb/table/folder ...` for labelled data)"
        )
    store = TokenStore(path)
    for name in ("lm_train", "lm_valid"):
        if not store.has_split(name):
            raise UlmfitError(
                f"{path} has no {name} split (it has: {', '.join(store.split_names)}); "
                "prepare it again with a share of the texts held out for it (lm_valid_frac)"
            )
    return store


def _valid_stream(store, n_tokens=None):
    stream = store.split("lm_valid").stream()
    return stream[:n_tokens] if n_tokens else stream


def resolve_corpus(paths, out, max_words, max_vocab, min_freq, tokenizer, quiet=False):
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


def _training_info(stage, store, s, phases, cfg, **extra):
    """config.json["training"]: how the folder's weights were made."""
    return {
        "stage": stage,
        **extra,
        "vocab_hash": store.vocab.hash,
        "bs": s.bs,
        "bptt": s.bptt,
        "sampled": s.sampled,
        "phases": [dataclasses.asdict(p) for p in phases],
        "train": dataclasses.asdict(cfg),
    }


def _saver(out, store, folder_config, resume=False):
    """on_epoch_end for fit: the language-model folder (+ metrics.json, its epoch's row) after every epoch whose
    valid loss is the best so far, so that a run stopped early, or one whose last epochs overfit, leaves its best
    epoch. A resumed run reads the best so far from metrics.json and saves an epoch that equals it again: the loop
    redoes the last epoch's on_epoch_end at resume, and the folder may not hold it (two epochs' losses are never
    equal in practice, so a tie is that same epoch)."""
    from ..artifacts import save_language_model
    from ..io import read_json, write_json
    from ..text.encoder import TextEncoder

    text = TextEncoder.from_store(store)
    metrics = Path(out) / "metrics.json"
    best = [read_json(metrics).get("valid_loss", float("inf")) if resume and metrics.exists() else float("inf")]

    def save(model, row):
        if row.get("valid_loss", float("-inf")) <= best[0]:
            best[0] = row.get("valid_loss", best[0])
            save_language_model(out, model, folder_config, text)
            write_json(metrics, row)

    return save


def _warn_existing(out, resume, quiet):
    from ..training.loop import CKPT

    if not resume and (Path(out) / CKPT).exists() and not quiet:
        print(f"note: {out} holds a training checkpoint; starting afresh (resume continues it)")


def _report(history, out, quiet=False):
    if history and not quiet:
        from ..io import read_json

        last = history[-1]
        saved = read_json(Path(out) / "metrics.json") if (Path(out) / "metrics.json").exists() else last
        which = (
            ""
            if saved.get("step") == last["step"]
            else f" (the best epoch, {saved.get('epoch')}; the last: {last['step']} steps)"
        )
        print(
            f"wrote {out}: valid loss {saved['valid_loss']:.4f}, "
            f"perplexity {saved.get('perplexity', float('nan')):.2f}, "
            f"accuracy {saved.get('accuracy', float('nan')):.4f} after {saved['step']} steps{which}"
            + (" (stopped by its budget; resuming continues it)" if last.get("partial") else "")
            + (" (stopped early: no better validation for `patience` epochs)" if last.get("early_stop") else "")
        )
    return history


def pretrain(corpus, out, settings: PretrainSettings | None = None):
    """Train a language model from scratch on a corpus -> the history (one dict per epoch).

    corpus: a tokenized dataset folder, a prepared one (tokenized here), or corpus files (.jsonl[.xz|.gz]
    with a text field, .txt), prepared and tokenized into OUT/corpus first (reused when unchanged)."""
    from ..artifacts import LanguageModelConfig
    from ..models.config import preset
    from ..models.language_model import LanguageModel
    from ..training.loop import Phase, fit

    import torch

    s = settings or PretrainSettings()
    check_output_dir(out, replaced=True)
    from ..training import distributed

    corpus = [corpus] if isinstance(corpus, (str, Path)) else list(corpus)
    # a corpus inside --out is fine (raw files are prepared into OUT/corpus); the folder itself is not
    for c in corpus:
        check_not_an_input(out, {"CORPUS": c}, inside=False)
    distributed.init_from_env()  # under torchrun rank 0 prepares the corpus; the others then reuse it
    corpus = distributed.main_first(
        lambda: resolve_corpus(corpus, out, s.max_words, s.max_vocab, s.min_freq, s.tokenizer, s.quiet)
    )
    store = open_lm_store(corpus)
    torch.manual_seed(s.seed)
    mcfg = preset(s.preset, vocab_size=len(store.vocab), drop_mult=s.drop_mult, arch=s.arch)
    model = LanguageModel(mcfg)
    task = _lm_task(model, store, s, s.backwards)
    # From scratch every layer is equally new: one lr for all groups.
    phases = [Phase(epochs=s.epochs, lr=s.lr, steps=s.max_steps, lr_div=1.0)]
    cfg = train_config(s)
    info = _training_info("pretrain", store, s, phases, cfg, corpus=str(corpus))
    folder = LanguageModelConfig(mcfg, s.backwards, info)
    if not s.quiet:
        n_params = sum(p.numel() for p in model.parameters())
        print(
            f"pretraining a {s.preset} {s.arch} LM ({n_params / 1e6:.1f}M parameters, vocab {len(store.vocab)}) "
            f"on {len(task.train.stream):,} tokens, validating on {len(task.valid.stream):,}"
        )
    _warn_existing(out, s.resume, s.quiet)
    history = fit(
        task,
        phases,
        cfg,
        out,
        resume=s.resume,
        on_epoch_end=_saver(out, store, folder, s.resume),
        identity=identity(s, vocab=store.vocab.hash, tokens=int(store.manifest["n_tokens"])),
    )
    return _report(history, out, s.quiet)


def load_pretrained_lm(folder, store, drop_mult=None, say=True):
    """A pretrained LM folder (or shipped name) mapped onto `store`'s vocab (`ulmfit.transfer.transfer`)."""
    from ..transfer import transfer

    return transfer(folder, store.vocab.itos, drop_mult, say)


def _lm_task(model, store, s, backwards: bool):
    """The LM task over the store's lm_train stream, validated on (a slice of) lm_valid, as settings `s` say."""
    from ..training.lm_task import LMTask

    train, valid = store.split("lm_train").stream(), _valid_stream(store, s.valid_tokens)
    return LMTask(model, train, valid, s.bs, s.bptt, backwards=backwards, alpha=s.alpha, beta=s.beta, sampled=s.sampled)


def _finetune_task(data, pretrained, s, say=True):
    """The store, the pretrained model mapped onto its vocab (in its LMTask) and the pretrained folder's config."""

    import torch

    store = open_lm_store(data)
    torch.manual_seed(s.seed)
    model, pre = load_pretrained_lm(pretrained, store, s.drop_mult, say=say)
    task = _lm_task(model, store, s, pre.backwards)
    return store, task, pre


def probe_finetune(data, pretrained, settings: FinetuneSettings) -> dict:
    """This machine's LM fine-tuning speed on `data` (ulmfit.training.probe) and what an epoch holds."""
    from ..training.probe import measure

    _, task, _ = _finetune_task(data, pretrained, settings, say=False)
    train = task.train_batches(0, settings.seed)
    return {
        **measure(task, train_config(settings)),
        "steps_per_epoch": len(train),
        "tokens_per_step": settings.bs * settings.bptt,
        "valid_tokens": int(len(task.valid.stream)),
    }


def finetune_lm(data, pretrained, out, settings: FinetuneSettings | None = None):
    """Fine-tune a pretrained language model (folder or shipped name) on a dataset's texts -> the history.

    The pretrained vocab is mapped onto the dataset's (new words start at the mean embedding), then
    `frozen_epochs` with only the embedding/decoder trainable, then `epochs` with everything unfrozen
    and discriminative lrs (group k from the top gets lr / lr_div^k)."""
    from ..artifacts import LanguageModelConfig
    from ..training.loop import Phase, fit

    from ..pretrained import resolve_lm

    s = settings or FinetuneSettings()
    check_output_dir(out, replaced=True)
    check_not_an_input(out, {"DATA": data, "--from": resolve_lm(pretrained)})
    store, task, pre = _finetune_task(data, pretrained, s)
    model = task.model
    phases = []
    if s.frozen_epochs:
        phases.append(Phase(epochs=s.frozen_epochs, lr=s.frozen_lr, freeze_to=-1, steps=s.frozen_steps))
    if s.epochs:
        phases.append(Phase(epochs=s.epochs, lr=s.lr, freeze_to=0, steps=s.max_steps, lr_div=s.lr_div))
    cfg = train_config(s, lr_div=s.lr_div)
    folder = LanguageModelConfig(
        model.cfg,
        pre.backwards,
        _training_info("finetune-lm", store, s, phases, cfg, data=str(data), pretrained=str(pretrained)),
    )
    _warn_existing(out, s.resume, s.quiet)
    history = fit(
        task,
        phases,
        cfg,
        out,
        resume=s.resume,
        on_epoch_end=_saver(out, store, folder, s.resume),
        identity=identity(
            s, vocab=store.vocab.hash, tokens=int(store.manifest["n_tokens"]), pretrained=str(pretrained)
        ),
    )
    return _report(history, out, s.quiet)


def evaluate_lm(model, data, settings: EvaluateLMSettings | None = None) -> dict:
    """Loss, accuracy and perplexity (full softmax) of a language model (folder or shipped name) on a split."""
    from ..training.lm_task import LMTask
    from ..training.loop import TrainConfig, pick_device, validate

    s = settings or EvaluateLMSettings()
    store = open_lm_store(data)
    lm, folder_config = load_pretrained_lm(model, store)
    stream = store.split(s.split).stream()
    if s.valid_tokens:
        stream = stream[: s.valid_tokens]
    task = LMTask(lm, stream, stream, s.bs, s.bptt, backwards=folder_config.backwards)
    cfg = TrainConfig(device=s.device, threads=s.threads, bf16=not s.fp32, progress=False)
    device = pick_device(cfg)
    metrics = validate(task, lm.to(device), device, cfg)
    return {
        "model": str(model),
        "data": str(data),
        "split": s.split,
        "tokens": int(len(stream)),
        **{k: round(float(v), 4) for k, v in metrics.items()},
    }


def lr_find_lm(data, out, pretrained=None, settings: LRFindLMSettings | None = None) -> float:
    """The lr finder on a language model (fresh, or `pretrained`): writes lr_find.csv/.json/.png to `out`
    and returns the suggested lr."""
    from ..models.config import preset
    from ..models.language_model import LanguageModel
    from ..training.lm_task import LMTask
    from ..training.lr_find import lr_find
    from ..training.optim import freeze_to

    import torch

    s = settings or LRFindLMSettings()
    check_output_dir(out)
    store = open_lm_store(data)
    torch.manual_seed(s.seed)
    backwards = s.backwards
    if pretrained:
        model, pre = load_pretrained_lm(pretrained, store, 0.3 if s.drop_mult is None else s.drop_mult)
        backwards = pre.backwards
    else:
        model = LanguageModel(preset(s.preset, vocab_size=len(store.vocab), drop_mult=s.drop_mult or 1.0, arch=s.arch))
    if s.frozen:
        freeze_to(model, -1)
    task = LMTask(
        model,
        store.split("lm_train").stream(),
        _valid_stream(store, s.valid_tokens),
        s.bs,
        s.bptt,
        backwards=backwards,
        alpha=s.alpha,
        beta=s.beta,
        sampled=s.sampled,
    )
    return lr_find(task, train_config(s), out, start=s.start, end=s.end, steps=s.steps)


def generate(model, prompt: str, settings=None) -> str:
    """A language-model folder (or shipped name) continues `prompt` -> the detokenized text, prompt included."""
    import torch

    from ..artifacts import load_language_model
    from ..models.sampling import sample
    from ..text.detokenize import detokenize
    from ..pretrained import resolve_lm
    from ..settings import GenerateSettings
    from ..text.vocab import Vocab

    s = settings or GenerateSettings()  # checked when made (n_words >= 1, temperature >= 0)
    lm, _, encoder = load_language_model(model)
    itos = Vocab.load(resolve_lm(model) / "vocab.json").itos
    ids = encoder.encode([prompt])[0]
    gen = torch.Generator().manual_seed(s.seed) if s.seed is not None else None
    if s.seed is not None:
        torch.manual_seed(s.seed)
    new = sample(lm, ids, s.n_words, s.temperature, generator=gen)
    return detokenize([itos[int(i)] for i in list(ids) + new])
