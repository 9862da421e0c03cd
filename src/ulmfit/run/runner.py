"""The stage runner behind `ulmfit run`.

Each stage writes one folder in the run folder and is keyed by its command line plus the keys of the
stages it reads; `stages.json` records key, status and wall time. A stage whose key is unchanged and
status `done` is reused; one left `running` (interrupted) is resumed with `--resume`; any other is
started afresh. The stages are the ordinary `ulmfit` commands, so a run is exactly what a user could
type by hand (`stages.json` lists each command).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

from ..errors import UlmfitError
from ..io import read_json, write_json
from .config import to_argv

TRAINING = ("pretrain", "finetune-lm", "train-classifier")  # commands that take --resume


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _lm_folder(spec: str) -> str:
    """[pretrain] folder: a language-model folder or a shipped model's name -> the folder's path."""
    from ..pretrained import resolve_lm

    try:
        return str(resolve_lm(spec))
    except UlmfitError as e:
        raise UlmfitError(f"[pretrain] folder: {e}") from None


class Runner:
    def __init__(self, cfg: dict, run_dir, source=None, force_from=None, quiet=False):
        self.cfg, self.dir, self.quiet = cfg, Path(run_dir), quiet
        self.source = source if source is not None else cfg["data"].get("source")
        self.force_from = force_from
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_path = self.dir / "stages.json"
        self.state = read_json(self.state_path) if self.state_path.exists() else {}
        self.keys: dict[str, str] = {}
        self.forced = False
        self.ran: set[str] = set()  # stages that ran (fresh or resumed) in this invocation
        self.order: list[str] = []

    # -- bookkeeping ---------------------------------------------------------------------------
    def _save(self):
        write_json(self.state_path, self.state)

    def _say(self, msg):
        print(f"[ulmfit run] {msg}", file=sys.stderr, flush=True)

    def _force(self, name) -> bool:
        if self.force_from is not None and name == self.force_from:
            self.forced = True
        return self.forced

    # -- stages --------------------------------------------------------------------------------
    def _prepare(self):
        from ..data.imdb import prepare_imdb
        from ..data.table import prepare_folder, prepare_table

        d = self.cfg["data"]
        out = self.dir / "data"
        force = self._force("prepare")
        t0 = time.time()
        self._say("stage prepare")
        if d["kind"] == "imdb":
            meta, cached = prepare_imdb(self.source or None, out, force=force, progress=not self.quiet,
                                        **d["args"])
        elif d["kind"] == "table":
            if not self.source and not d.get("train"):
                raise UlmfitError("[data] kind = 'table' needs train = 'file' (or --source)")
            meta, cached = prepare_table(self.source or d["train"], out, d.get("text_cols") or ["text"],
                                         label_col=d.get("label_col", "label"), label_sep=d.get("label_sep"),
                                         test=d.get("test"),
                                         unlabelled=d.get("unlabelled", []), force=force,
                                         progress=not self.quiet, **d["args"])
        else:
            meta, cached = prepare_folder(self.source or d.get("path"), out, force=force, progress=not self.quiet,
                                          **d["args"])
        self._record("prepare", meta["fingerprint"], time.time() - t0, cached, ["prepare", d["kind"], str(self.source)])

    def _tokenize(self):
        from ..text.pipeline import tokenize_dataset

        t = self.cfg["tokenize"]
        t0 = time.time()
        self._say("stage tokenize")
        kw = {k: v for k, v in t.items() if k in ("max_vocab", "min_freq", "sp_vocab_size", "workers")}
        store, cached = tokenize_dataset(self.dir / "data", backend=t.get("tokenizer", "spacy"),
                                         force=self._force("tokenize"), progress=not self.quiet, **kw)
        key = _key(self.keys["prepare"], store.manifest["key"], store.manifest["vocab_hash"])
        self._record("tokenize", key, time.time() - t0, cached, ["tokenize", str(self.dir / "data")])

    def _record(self, name, key, seconds, reused, argv):
        self.keys[name] = key
        self.order.append(name)
        prev = self.state.get(name, {})
        self.state[name] = {"key": key, "status": "done", "reused": bool(reused), "argv": argv,
                            "seconds": prev.get("seconds", round(seconds, 2)) if reused else round(seconds, 2)}
        self._save()

    def _command(self, name, argv, out: Path, deps, extra_key=None):
        """Run one `ulmfit` command as a stage (reused, resumed or fresh)."""
        from ..cli import main

        key = _key(argv, [self.keys[d] for d in deps], extra_key)
        prev = self.state.get(name, {})
        # A stage whose input stage ran again must run again too, even when its key is unchanged (keys
        # name settings, not contents: e.g. a classifier resumed after `--from classifier` was killed).
        force = self._force(name) or any(d in self.ran for d in deps)
        self.order.append(name)
        self.keys[name] = key
        if not force and prev.get("key") == key and prev.get("status") == "done" and out.exists():
            self._say(f"stage {name}: reused ({out})")
            prev["reused"] = True
            self._save()
            return
        resume = (not force and prev.get("key") == key and prev.get("status") == "running"
                  and argv[0] in TRAINING and (out / "checkpoint.safetensors").exists())
        if not resume and out.exists():
            shutil.rmtree(out)
        run_argv = argv + (["--resume"] if resume else [])
        self._say(f"stage {name}: {'resuming' if resume else 'running'} `ulmfit {' '.join(run_argv)}`")
        self.state[name] = {"key": key, "status": "running", "argv": argv,
                            "seconds": prev.get("seconds", 0.0) if resume else 0.0}
        self._save()
        t0 = time.time()
        code = main(run_argv)
        self.state[name]["seconds"] = round(self.state[name]["seconds"] + time.time() - t0, 2)
        if code != 0:
            self._save()
            raise UlmfitError(f"stage {name} failed (exit {code}); fix the cause and run again to resume")
        self.state[name].update(status="done", reused=False)
        self.ran.add(name)
        self._save()

    def _lr_find(self, data, mode, q):
        """A side stage (nothing reads it): the lr finder on the language model that the next stage
        trains, for the report's plot and suggested lr. Its batch shape follows that stage's."""
        from ..data.dataset import file_key

        cfg = self.cfg
        stage_args = cfg["finetune_lm" if mode in ("corpus", "from") else "pretrain"]["args"]
        args = {k: stage_args[k] for k in ("bs", "bptt", "threads") if k in stage_args}
        extra = None
        if mode == "scratch":
            args["preset"] = stage_args.get("preset", "small")
            src, deps = [], ["tokenize"]
        elif mode == "corpus":
            src, deps = ["--from", str(self.dir / "pretrain"), "--frozen"], ["tokenize", "pretrain"]
        else:
            folder = _lm_folder(str(cfg["pretrain"]["folder"]))
            src, deps = ["--from", folder, "--frozen"], ["tokenize"]
            extra = file_key(Path(folder) / "model.safetensors")
        args.update(cfg["lr_find"]["args"])
        out = self.dir / "lr_find"
        self._command("lr_find", ["lr-find", data, *src, "--out", str(out), *to_argv(args), *q], out, deps, extra)

    def run(self):
        from ..data.dataset import file_key

        cfg, d = self.cfg, self.dir
        q = ["--quiet"] if self.quiet else []
        t0 = time.time()
        self._prepare()
        self._tokenize()
        data = str(d / "data")
        directions = [False] + ([True] if cfg["classifier"].get("backwards") else [])
        mode = cfg["pretrain"]["mode"]
        lr_find = "lr_find" in cfg and mode != "none"
        for bwd in directions:
            sfx, flag = ("-bwd", ["--backwards"]) if bwd else ("", [])
            lm = d / f"lm{sfx}"
            if mode == "corpus":
                corpus = [str(Path(p)) for p in cfg["pretrain"]["corpus"]]
                missing = [p for p in corpus if not Path(p).exists()]
                if missing:
                    raise UlmfitError(f"[pretrain] corpus file {missing[0]}: no such file")
                pre = d / f"pretrain{sfx}"
                self._command(f"pretrain{sfx}", ["pretrain", *corpus, "--out", str(pre),
                                                 *to_argv(cfg["pretrain"]["args"]), *flag, *q], pre, [],
                              extra_key=[file_key(p) for p in corpus])
                if lr_find and not bwd:
                    self._lr_find(data, mode, q)
                self._command(f"finetune_lm{sfx}", ["finetune-lm", data, "--from", str(pre), "--out", str(lm),
                                                    *to_argv(cfg["finetune_lm"]["args"]), *q], lm,
                              ["tokenize", f"pretrain{sfx}"])
            elif mode == "from":
                folder = _lm_folder(str(cfg["pretrain"]["folder"]) + (sfx if bwd else ""))
                if lr_find and not bwd:
                    self._lr_find(data, mode, q)
                self._command(f"finetune_lm{sfx}", ["finetune-lm", data, "--from", folder, "--out", str(lm),
                                                    *to_argv(cfg["finetune_lm"]["args"]), *q], lm, ["tokenize"],
                              extra_key=file_key(Path(folder) / "model.safetensors"))
            elif mode == "scratch":
                if lr_find and not bwd:
                    self._lr_find(data, mode, q)
                self._command(f"lm{sfx}", ["pretrain", data, "--out", str(lm), *to_argv(cfg["pretrain"]["args"]),
                                           *flag, *q], lm, ["tokenize"])
            clas = d / f"classifier{sfx}"
            enc = ["--encoder", str(lm)] if mode != "none" else []
            lm_dep = [] if mode == "none" else [f"finetune_lm{sfx}" if mode in ("corpus", "from") else f"lm{sfx}"]
            self._command(f"classifier{sfx}", ["train-classifier", data, *enc, "--out", str(clas),
                                               *to_argv(cfg["classifier"]["args"]), *flag, *q], clas,
                          ["tokenize", *lm_dep])
        ev = d / "evaluation"
        ens = ["--ensemble", str(d / "classifier-bwd")] if len(directions) == 2 else []
        self._command("evaluate", ["evaluate", str(d / "classifier"), data, *ens, "--out", str(ev),
                                   *to_argv(cfg["evaluate"]["args"]), *q], ev,
                      ["tokenize", "classifier"] + (["classifier-bwd"] if ens else []))
        from .report import write_report

        self.state["_total_seconds"] = round(time.time() - t0, 2)
        self._save()
        return write_report(self)
