"""Moving language-model weights between vocabularies, and importing fastai's published AWD-LSTMs.

Nothing here executes pickled code: `.pth` files load with `torch.load(weights_only=True)` and a
pickled itos list loads through an unpickler that knows no classes at all.
"""

from __future__ import annotations

import io
import json
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from .errors import UlmfitError
from .text.special import BOS, EOS, FLD, MAJ, PAD, REP, SPECIAL_TOKENS, UNK, UP, WREP

EMBEDDING_KEY, DECODER_W, DECODER_B = "encoder.embedding.weight", "decoder.weight", "decoder.bias"


def _remap_rows(w, old_pos, new_pos, n_new):
    """Rows old_pos of w at rows new_pos of a new [n_new, ...] tensor; other rows = mean row of w."""
    mean = w.float().mean(0).to(w.dtype)
    out = mean.expand(n_new, *w.shape[1:]).clone()
    out[new_pos] = w[old_pos]
    return out


def map_vocab(state_dict, old_itos, new_itos):
    """Re-index a language model's vocab-sized tensors from `old_itos` to `new_itos`.

    -> (new_state_dict, n_matched). A word in both vocabs keeps its embedding row, decoder row and
    decoder bias; a word new to the model gets the mean embedding row and the mean bias (ULMFiT's
    recipe: a neutral starting point that fine-tuning moves). If the decoder weight is tied to the
    embedding (the same tensor or equal values), it is the same tensor in the result.
    Other tensors are passed through unchanged.
    """
    old_itos, new_itos = list(old_itos), list(new_itos)
    if EMBEDDING_KEY not in state_dict:
        raise UlmfitError(f"the state dict has no {EMBEDDING_KEY}: not an ulmfit language model")
    emb = state_dict[EMBEDDING_KEY]
    if emb.shape[0] != len(old_itos):
        raise UlmfitError(f"the embedding has {emb.shape[0]} rows but the old vocab has {len(old_itos)} tokens")
    first = {}
    for i, tok in enumerate(old_itos):
        first.setdefault(tok, i)
    pairs = [(j, first[tok]) for j, tok in enumerate(new_itos) if tok in first]
    new_pos = torch.tensor([j for j, _ in pairs], dtype=torch.long)
    old_pos = torch.tensor([i for _, i in pairs], dtype=torch.long)
    n_new = len(new_itos)

    out = dict(state_dict)
    new_emb = _remap_rows(emb, old_pos, new_pos, n_new)
    out[EMBEDDING_KEY] = new_emb
    if DECODER_W in state_dict:
        dec = state_dict[DECODER_W]
        tied = dec is emb or (dec.shape == emb.shape and torch.equal(dec, emb))
        out[DECODER_W] = new_emb if tied else _remap_rows(dec, old_pos, new_pos, n_new)
    if DECODER_B in state_dict:
        out[DECODER_B] = _remap_rows(state_dict[DECODER_B], old_pos, new_pos, n_new)
    return out, len(pairs)


def transfer(folder, itos, drop_mult=None, say=True):
    """The one way a pretrained LM meets a new vocab: a language-model folder (or a shipped model's name) with
    its vocab-sized weights re-indexed onto `itos` (`map_vocab`) -> (LanguageModel, the folder's
    LanguageModelConfig). drop_mult: the dropout multiplier to train it with (None: the folder's)."""
    import dataclasses

    from .artifacts import check_vocab, read_language_model_state
    from .models.language_model import LanguageModel
    from .pretrained import resolve_lm
    from .text.vocab import Vocab

    folder = resolve_lm(folder)
    folder_config, state_dict = read_language_model_state(folder)
    old_itos = Vocab.load(Path(folder) / "vocab.json").itos
    check_vocab(folder, len(old_itos), folder_config.model)
    new_itos = list(itos)
    state_dict, n_matched = map_vocab(state_dict, old_itos, new_itos)
    mcfg = dataclasses.replace(folder_config.model, vocab_size=len(new_itos))
    if drop_mult is not None:
        mcfg = dataclasses.replace(mcfg, drop_mult=drop_mult)
    model = LanguageModel(mcfg)
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as e:
        raise UlmfitError(f"the weights in {folder} do not fit its config.json: {e}") from None
    # Said even when quiet: a low count means the wrong pretrained model or tokenizer.
    if say:
        print(
            f"vocab: {n_matched:,} of the dataset's {len(new_itos):,} tokens found in the pretrained vocab "
            f"({len(old_itos):,} tokens); the other {len(new_itos) - n_matched:,} start at the mean embedding"
        )
    return model, folder_config


# ---------------------------------------------------------------------------------------------------
# fastai import

# fastai 0.7 / v1 names of the special tokens -> ours (v1 and v2 already use the xx... names).
FASTAI_SPECIALS = {
    "_unk_": UNK,
    "_pad_": PAD,
    "xbos": BOS,
    "xeos": EOS,
    "xfld": FLD,
    "t_up": UP,
    "tk_rep": REP,
    "tk_wrep": WREP,
    "t_maj": MAJ,
}


class _ListOnlyUnpickler(pickle.Unpickler):
    """Lists, strings and numbers are pickle opcodes of their own; any class or function lookup
    (the way a pickle runs code) is refused. `builtins.list`/`str` are allowed for old protocols."""

    def find_class(self, module, name):
        if module in ("builtins", "__builtin__") and name in ("list", "str"):
            return {"list": list, "str": str}[name]
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only a plain list of strings is allowed")


def read_itos(source) -> list:
    """A token list from a Python list, a JSON file (list or {"itos": [...]}), a pickled list
    (fastai's itos_wt103.pkl, read without executing code) or a text file with one token per line."""
    itos: Any  # whatever the file holds, until checked below
    if isinstance(source, (list, tuple)):
        itos = list(source)
    else:
        path = Path(source)
        if not path.exists():
            raise UlmfitError(f"vocab file {path} does not exist")
        data = path.read_bytes()
        if path.suffix in (".pkl", ".pickle") or data[:1] == b"\x80":
            try:
                itos = _ListOnlyUnpickler(io.BytesIO(data)).load()
            except Exception as e:
                raise UlmfitError(
                    f"{path}: not a pickled list of tokens ({e}); "
                    'convert it to JSON ({"itos": [...]}) if it holds another type'
                ) from None
        elif path.suffix == ".json":
            try:
                itos = json.loads(data.decode("utf-8"))
            except ValueError as e:
                raise UlmfitError(f"{path} is not valid JSON: {e}") from None
            itos = itos.get("itos") if isinstance(itos, dict) else itos
        else:
            itos = data.decode("utf-8").split("\n")
            if itos and itos[-1] == "":
                itos.pop()
        if not isinstance(itos, list):
            raise UlmfitError(f"{path} does not hold a list of tokens")
    if not all(isinstance(t, str) for t in itos):
        raise UlmfitError("the vocab must be a list of strings")
    return itos


def _fastai_weights(pth_path) -> dict:
    path = Path(pth_path)
    if not path.exists():
        raise UlmfitError(f"weights file {path} does not exist")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # includes pickle.UnpicklingError for anything but tensors and containers
        raise UlmfitError(f"{path}: cannot read it as plain PyTorch weights ({type(e).__name__}: {e})") from None
    if isinstance(sd, dict) and isinstance(sd.get("model"), dict):  # learn.save(with_opt=True)
        sd = sd["model"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise UlmfitError(f"{path} does not hold a state dict of tensors")
    return sd


_RNN = re.compile(r"(?:^|\.)rnns\.(\d+)\.(?:module\.)?(weight_ih_l0|weight_hh_l0(?:_raw)?|bias_ih_l0|bias_hh_l0)$")


def _fastai_to_ulmfit(sd: dict, path) -> dict:
    """Rename a fastai AWD-LSTM language model's keys to ours (see module awd_lstm)."""
    out: dict = {}
    hh_raw: dict = {}
    for key, t in sd.items():
        if "encoder_dp" in key or "encoder_with_dropout" in key:
            continue  # fastai's embedding-dropout wrapper: a second reference to the embedding
        m = _RNN.search(key)
        if m:
            layer, name = int(m.group(1)), m.group(2)
            if name == "weight_hh_l0_raw":
                hh_raw[layer] = t
            else:
                out.setdefault(f"encoder.rnns.{layer}.{name}", t)  # weight_hh_l0: the dropped copy
        elif re.search(r"(?:^|\.)encoder\.weight$", key):
            out[EMBEDDING_KEY] = t
        elif re.search(r"(?:^|\.)decoder\.weight$", key):
            out[DECODER_W] = t
        elif re.search(r"(?:^|\.)decoder\.bias$", key):
            out[DECODER_B] = t
    for layer, t in hh_raw.items():  # the raw weight is the trained one; prefer it
        out[f"encoder.rnns.{layer}.weight_hh_l0"] = t
    if EMBEDDING_KEY not in out or not any(k.startswith("encoder.rnns.") for k in out):
        raise UlmfitError(
            f"{path}: no fastai AWD-LSTM weights found (expected keys like 0.encoder.weight, "
            f"0.rnns.0.module.weight_ih_l0); it has {', '.join(list(sd)[:6])}..."
        )
    return out


def import_fastai(pth_path, itos_path_or_list):
    """Read fastai's published AWD-LSTM language model (v2 `lstm_fwd.pth`, v1 `fwd_wt103.h5`, ...)
    and its vocab. -> (ModelConfig, state_dict with ulmfit keys, itos starting with our specials).

    fastai's special tokens are renamed to ours and moved to our fixed ids; any of ours the model
    lacks get the mean embedding row. Sizes come from the weights; dropouts are the paper's."""
    from .models.config import preset

    sd = _fastai_to_ulmfit(_fastai_weights(pth_path), pth_path)
    itos = read_itos(itos_path_or_list)
    emb = sd[EMBEDDING_KEY]
    if emb.dim() != 2 or emb.shape[0] != len(itos):
        raise UlmfitError(f"{pth_path}: the embedding is {tuple(emb.shape)} but the vocab has {len(itos)} tokens")
    n_layers = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("encoder.rnns."))
    for i in range(n_layers):
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            if f"encoder.rnns.{i}.{name}" not in sd:
                raise UlmfitError(f"{pth_path}: layer {i} lacks {name}")
    emb_size = emb.shape[1]
    n_hid = sd["encoder.rnns.0.weight_hh_l0"].shape[1] if n_layers > 1 else emb_size
    last = sd[f"encoder.rnns.{n_layers - 1}.weight_hh_l0"]
    if last.shape[1] != emb_size:
        raise UlmfitError(f"{pth_path}: the last LSTM layer has {last.shape[1]} units, not emb size {emb_size}")
    tied = DECODER_W not in sd or torch.equal(sd[DECODER_W], emb)
    if DECODER_W not in sd:
        sd[DECODER_W] = emb

    # Our vocab: our specials at their fixed ids, then fastai's other tokens in their order.
    renamed = [FASTAI_SPECIALS.get(t, t) for t in itos]
    specials = set(SPECIAL_TOKENS)
    rest, seen = [], set()
    for t in renamed:
        if t not in specials and t not in seen:
            seen.add(t)
            rest.append(t)
    new_itos = SPECIAL_TOKENS + rest
    sd, _ = map_vocab(sd, renamed, new_itos)
    cfg = preset(
        "paper",
        len(new_itos),
        emb_size=int(emb_size),
        n_hid=int(n_hid),
        n_layers=n_layers,
        tie_weights=tied,
        out_bias=DECODER_B in sd,
    )
    sd = {k: v.float().contiguous() for k, v in sd.items()}
    if tied:
        sd[DECODER_W] = sd[EMBEDDING_KEY]
    return cfg, sd, new_itos


def import_fastai_folder(pth_path, itos_path, out):
    """fastai's published AWD-LSTM (weights + vocab) -> an ulmfit language-model folder `out`; returns its
    ModelConfig. fastai tokenized with spaCy's English defaults and the same xx... rules as ours."""
    from .artifacts import LanguageModelConfig, save_model
    from .io import write_json

    cfg, state_dict, itos = import_fastai(pth_path, itos_path)

    class _ForeignVocab:
        def save(self, folder):
            write_json(f"{folder}/tokenizer.json", {"backend": "spacy", "lang": "en"})
            write_json(f"{folder}/vocab.json", {"itos": itos}, indent=None)

    source = {"fastai_weights": str(pth_path), "fastai_vocab": str(itos_path)}
    config = LanguageModelConfig(cfg, False, {"source": source})
    save_model(out, state_dict, config.to_dict(), _ForeignVocab())
    return cfg
