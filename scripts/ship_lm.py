"""Turn a pretrained language-model folder into a shipped model: src/ulmfit/pretrained/NAME/.

Writes config.json, model.safetensors in fp16 (half the size; loading casts back to float32),
vocab.json, tokenizer.json, card.json (the figures `ulmfit models` shows) and README.md (the model
card). Replaces the files of an earlier version of NAME. Validation perplexities are measured here,
with the exact full softmax, on the lm_valid split of each --eval dataset.

usage: python scripts/ship_lm.py RUN_DIR NAME --corpus-desc TEXT --command TEXT [--eval LABEL=DATA ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shutil
import subprocess
from datetime import date
from pathlib import Path

import torch

from ulmfit import evaluate_lm
from ulmfit.artifacts import half_precision, load_language_model, save_model
from ulmfit.io import read_json, write_json, write_text
from ulmfit.settings import EvaluateLMSettings

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "src" / "ulmfit" / "pretrained"


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        name = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        name = platform.processor() or "unknown CPU"
    return f"{name}, {torch.get_num_threads()} threads, torch CPU capability {torch.backends.cpu.get_cpu_capability()}"


def epochs_of(history, train) -> float | None:
    """Passes over the training tokens. The epoch's length in steps comes from the last phase's first epoch
    (after the steps of the phases before it: a fine-tune's frozen steps); a run whose only epoch of that
    phase was cut (--max-steps, a phase's own step cap, or a stop) ends inside it: None."""
    last = history[-1].get("phase")
    phase = [h for h in history if h.get("phase") == last]
    start = next((h["step"] for h in reversed(history) if h.get("phase") != last), 0)
    phases = train.get("phases") or []
    cap = phases[last - 1].get("steps") if last and len(phases) >= last else None
    if len(phase) == 1 and (train.get("max_steps") or cap or phase[0].get("partial")):
        return None
    return round(history[-1]["step"] / (phase[0]["step"] - start), 2)


def runs_before(prior: dict) -> list:
    """The runs a model trained further went through before this one, oldest first: [(tokens, corpus), ...]."""
    if prior.get("started_from"):
        return runs_before(prior["started_from"]) + [(prior["last_tokens"], prior["trained_on"])]
    return [(prior["tokens_seen"], prior["trained_on"])]


def chain(prior: dict, tokens: int, trained_on: str) -> str:
    """The card's "started from": the model, then every run back to the first, oldest first, a corpus named once
    where runs repeat it ("1. N tokens of X; 2. M tokens of Y; 3. (this one) K tokens of the same corpus")."""
    runs = [*runs_before(prior), (tokens, trained_on)]
    parts = []
    for i, (n, corpus) in enumerate(runs):
        same = i > 0 and corpus == runs[i - 1][1]
        this = " (this one)" if i == len(runs) - 1 else ""
        parts.append(f"{i + 1}.{this} {n:,} tokens of {'the same corpus' if same else corpus}")
    return f"{prior['name']}; the runs, oldest first: {'; '.join(parts)}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path, help="the pretrain --out folder")
    p.add_argument("name", help="the shipped name, e.g. en-qrnn (the backward model: NAME-bwd)")
    p.add_argument("--corpus-desc", required=True, help="what it was trained on, one sentence")
    p.add_argument("--command", required=True, help="the exact command that rebuilds it")
    p.add_argument("--wall-time", required=True, help="training wall time, e.g. '52 min'")
    p.add_argument("--machine", help="where it was trained (default: this machine's CPU)")
    p.add_argument("--eval", action="append", default=[], metavar="LABEL=DATA",
                   help="a tokenized dataset to report lm_valid perplexity on (repeatable)")
    p.add_argument("--eval-tokens", type=int, default=500_000, help="tokens of each lm_valid to measure")
    p.add_argument("--eval-split", default="lm_valid",
                   help="the split of each --eval dataset to measure (lm_train: a folder of held-out texts only)")
    p.add_argument("--started-from", metavar="NAME",
                   help="the shipped model RUN_DIR was fine-tuned from (finetune-lm --from NAME): the card adds "
                   "the tokens that one saw to this run's")
    p.add_argument("--dest", type=Path, default=SHIPPED, help=f"where shipped models live (default {SHIPPED})")
    a = p.parse_args(argv)

    lm, config, text_encoder = load_language_model(a.run_dir)
    history = read_json(a.run_dir / "history.json")
    train = config.training
    backwards = config.backwards
    steps = history[-1]["step"]
    card = {
        "tokens_seen": int(steps * train["bs"] * train["bptt"]),
        "epochs": epochs_of(history, train),
        "steps": steps,
        "valid_perplexity": round(history[-1]["perplexity"], 2),
        "wall_time": a.wall_time,
        "machine": a.machine or cpu_model(),
        "date": date.today().isoformat(),
        "trained_on": a.corpus_desc,
        "command": a.command,
        "sampled_softmax": train.get("sampled", 0),
        "perplexity": {},
    }
    if a.started_from:  # a model trained further: what it started from, and all the tokens it has seen
        from ulmfit.pretrained import resolve_lm

        prior = read_json(resolve_lm(a.started_from) / "card.json")
        # a model that was itself trained further counts everything it saw, and keeps its own start (a chain)
        before = prior.get("tokens_seen_in_all", prior["tokens_seen"])
        card["started_from"] = {"name": a.started_from, "tokens_seen": before, "trained_on": prior["trained_on"]}
        if prior.get("started_from"):
            card["started_from"].update(last_tokens=prior["tokens_seen"], started_from=prior["started_from"])
        card["tokens_seen_in_all"] = before + card["tokens_seen"]
    for spec in a.eval:
        label, data = spec.split("=", 1)
        s = EvaluateLMSettings(valid_tokens=a.eval_tokens, split=a.eval_split)
        card["perplexity"][label] = evaluate_lm(a.run_dir, data, s)["perplexity"]

    out = a.dest / a.name
    if out.exists():
        shutil.rmtree(out)  # an earlier version of this shipped model: replaced whole
    half = half_precision(lm.state_dict())  # tied: stored once
    shipped = dataclasses.replace(config, training={k: v for k, v in train.items() if k != "corpus"})  # no local paths
    save_model(out, half, shipped.to_dict(), text_encoder)
    write_json(out / "card.json", card)
    m = config.to_dict()["model"]
    ppl = "\n".join(f"| {k} ({a.eval_split}, first {a.eval_tokens:,} tokens) | {v} |"
                    for k, v in card["perplexity"].items())
    prior = card.get("started_from")
    start = (f"| started from | {chain(prior, card['tokens_seen'], card['trained_on'])}; "
             f"{card['tokens_seen_in_all']:,} tokens in all |\n" if prior else "")
    loss = f"sampled softmax of {card['sampled_softmax']} words per step" if card["sampled_softmax"] else "full softmax"
    write_text(out / "README.md", f"""# {a.name}: a general-English {m.get('arch', 'awd_lstm')} language model ({'backward' if backwards else 'forward'})

Shipped with ulmfit as a starting point for `ulmfit finetune-lm DATA --from {a.name}` (and `[pretrain]
mode = "from"`, folder = "{a.name.removesuffix('-bwd')}" in a run config). Weights are fp16 (loaded as float32).

| | |
|---|---|
| architecture | {m.get('arch')} {m['emb_size']}/{m['n_hid']}/{m['n_layers']} (embedding/hidden/layers), tied decoder, vocab {m['vocab_size']:,} (spaCy tokens) |
| direction | {'backward (reads text right to left)' if backwards else 'forward'} |
| trained on | {card['trained_on']} |
{start}| tokens seen | {card['tokens_seen']:,} ({steps:,} steps of bs {train['bs']} x bptt {train['bptt']}), {card['epochs'] or 'under one'} epoch(s) |
| training loss | {loss}; perplexities below are exact (full softmax) |
| wall time | {card['wall_time']} |
| machine | {card['machine']} |
| date | {card['date']} |
| validation perplexity, the training corpus's lm_valid (as trained) | {card['valid_perplexity']} |
{ppl}

Rebuild:

```bash
{card['command']}
python scripts/ship_lm.py RUN_DIR {a.name} ...   # this card and the fp16 copy
```
""")
    print(json.dumps({"shipped": str(out), **card}))


if __name__ == "__main__":
    main()
