"""The stage runner behind `ulmfit run`: the stages of `run.graph.plan`, each a call of an `ulmfit.api` function.

Each stage writes one folder in the run folder and is keyed by the hash of its settings plus the keys of
the stages it reads; `stages.json` records key, status, wall time and the settings. A stage whose key is
unchanged and status `done` is reused; one left `running` (interrupted) is resumed; any other is
started afresh. One run at a time per run folder: it holds an flock on DIR/.run.lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import math
import shutil
import sys
import time
from pathlib import Path

from .. import api
from ..errors import UlmfitError
from ..io import read_json, write_json
from ..settings import EvaluateSettings
from . import graph as G
from .config import RunConfig, stage_settings

LOCK_NAME = ".run.lock"


def stage_names(cfg: dict) -> list[str]:
    """The stages `Runner.run` goes through for this config, in order: what --from may name."""
    return G.names(cfg)


def check_force_from(cfg: dict, name: str) -> None:
    """--from STAGE must name a stage of this run: another name would redo nothing and reuse every stage."""
    names = stage_names(cfg)
    if name not in names:
        raise UlmfitError(f"--from {name}: this run has no stage {name!r} (its stages: {', '.join(names)})")


@contextlib.contextmanager
def _run_lock(run_dir: Path):
    """An exclusive flock on DIR/.run.lock while a run works in DIR (the system releases it when the holder
    exits, however it ends). A second run is refused rather than made to wait: after the wait it would
    redo or reuse stages by what the first one left, which is rarely what was meant."""
    path = run_dir / LOCK_NAME
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UlmfitError(
                f"another `ulmfit run` is using {run_dir} (it holds {path}): wait for it to finish, "
                "or give this run another --out"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def read_stages(path: Path, redo_all: bool) -> dict:
    """stages.json, checked: an object with an object per stage. A damaged one is an error that keeps it (the
    stage folders it describes are kept too), unless every stage is redone anyway (`--from prepare`)."""
    if not path.exists():
        return {}
    try:
        state = read_json(path)
        if not isinstance(state, dict):
            raise ValueError("not a JSON object")
        bad = [k for k, v in state.items() if (not k.startswith("_") or k == "_plan") and not isinstance(v, dict)]
        if bad:
            raise ValueError(f"entry {bad[0]!r} is not a JSON object")
    except (OSError, ValueError) as e:  # (JSON and UTF-8 decoding errors are ValueErrors)
        if not redo_all:
            raise UlmfitError(
                f"{path}: cannot read this run's record of its stages ({e}); the stage folders are "
                "kept: restore the file, or run again with `--from prepare` to redo every stage "
                "(that writes a new record)"
            ) from None
        print(
            f"[ulmfit run] warning: {path} is damaged ({e}): ignored, as --from prepare redoes every stage",
            file=sys.stderr,
            flush=True,
        )
        return {}
    return state


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _lm_folder(spec: str) -> str:
    """[pretrain] folder: a language-model folder or a shipped model's name -> the folder's path."""
    from ..pretrained import resolve_lm

    try:
        return str(resolve_lm(spec))
    except UlmfitError as e:
        raise UlmfitError(f"[pretrain] folder: {e}") from None


def _changed(settings) -> dict:
    """The settings that differ from their class's defaults (what stages.json and the report show)."""
    default = type(settings)()
    return {
        f.name: getattr(settings, f.name)
        for f in dataclasses.fields(settings)
        if getattr(settings, f.name) != getattr(default, f.name)
    }


class Runner:
    def __init__(self, cfg: dict, run_dir, source=None, force_from=None, quiet=False):
        if force_from is not None:
            check_force_from(cfg, force_from)
        self.cfg, self.dir, self.quiet = cfg, Path(run_dir), quiet
        self.rc = RunConfig.of(cfg)
        self.source = source if source is not None else self.rc.source
        self.force_from = force_from
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_path = self.dir / "stages.json"
        self.state: dict = {}  # read by run(), under the run folder's lock
        self.keys: dict[str, str] = {}
        self.forced = False
        self.ran: set[str] = set()  # stages that ran (fresh or resumed) in this invocation
        self.order: list[str] = []
        self.stages = {st.name: st for st in G.plan(self.rc)}
        self.data = str(self.dir / G.folder_of(G.PREPARE))
        self.plan: dict = {}  # stage settings sized to the data or the budget (ulmfit.run.budget)
        # Started by torchrun: rank 0 runs the stages that are not training (the others wait, then find
        # them done), every rank runs the training stages, and only rank 0 writes stages.json and reports.
        from ..training import distributed

        distributed.init_from_env()
        self.dist = distributed
        self.main = distributed.is_main()

    # -- bookkeeping ---------------------------------------------------------------------------
    def _save(self):
        if self.main:
            write_json(self.state_path, self.state)

    def _say(self, msg):
        if self.main:
            print(f"[ulmfit run] {msg}", file=sys.stderr, flush=True)

    def _force(self, name) -> bool:
        if self.force_from is not None and name == self.force_from:
            self.forced = True
        return self.forced

    def settings(self, section, **changes):
        """The section's settings with the runner's own (quiet) and `changes` applied."""
        s = stage_settings(self.cfg, section) if section in self.cfg else stage_settings({section: {}}, section)
        if "quiet" in {f.name for f in dataclasses.fields(s)}:
            changes.setdefault("quiet", self.quiet)
        return dataclasses.replace(s, **{**self.plan.get(section, {}), **changes})

    # -- stages --------------------------------------------------------------------------------
    def _prepare(self, st: G.Stage):
        out = self.dir / st.folder
        t0 = time.time()
        self._say(f"stage {st.name}")
        s = self.settings(st.kind.section, force=self._force(st.name))
        source = self.source or None
        if self.rc.data_kind != "imdb" and not source:
            raise UlmfitError(f"[data] kind = {self.rc.data_kind!r} needs source = 'path' (or --source)")
        meta = self._main_first(lambda s: api.prepare(self.rc.data_kind, source, out, s), s)
        self._record(st.name, meta["fingerprint"], time.time() - t0, meta["reused"], s)

    def _tokenize(self, st: G.Stage):
        t0 = time.time()
        self._say(f"stage {st.name}")
        s = self.settings(st.kind.section, force=self._force(st.name))
        if s.keep_vocab == "pretrained":  # the words of the model the run starts from (config.validate checks)
            s = dataclasses.replace(s, keep_vocab=_lm_folder(str(self.rc.folder)))
        store, cached = self._main_first(lambda s: api.tokenize(self.data, s), s)
        key = _key(*[self.keys[i] for i in st.inputs], store.manifest["key"], store.manifest["vocab_hash"])
        self._record(st.name, key, time.time() - t0, cached, s)

    def _main_first(self, call, settings):
        """call(settings) on rank 0, then on the other ranks (never forced: they reuse what rank 0 made)."""
        return self.dist.main_first(lambda: call(settings if self.main else dataclasses.replace(settings, force=False)))

    def _record(self, name, key, seconds, reused, settings):
        self.keys[name] = key
        self.order.append(name)
        prev = self.state.get(name, {})
        self.state[name] = {
            "key": key,
            "status": "done",
            "reused": bool(reused),
            "settings": _changed(settings),
            "seconds": prev.get("seconds", round(seconds, 2)) if reused else round(seconds, 2),
        }
        self._save()

    def _stage(self, st: G.Stage, fn, args, settings, extra_key=None):
        """Run one stage function `fn(*args, settings)` writing the stage's folder (reused, resumed or fresh)."""
        name, out, deps, training = st.name, self.dir / st.folder, st.inputs, st.kind.resume is not None
        key = _key(
            st.kind.name, [str(a) for a in args], dataclasses.asdict(settings), [self.keys[d] for d in deps], extra_key
        )
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
        resume = (
            not force
            and prev.get("key") == key
            and prev.get("status") == "running"
            and st.kind.resume is not None
            and (out / st.kind.resume).exists()
        )
        if not resume and out.exists() and self.main:
            shutil.rmtree(out)
        self.dist.barrier()
        if resume:
            settings = dataclasses.replace(settings, resume=True)
        self._say(f"stage {name}: {'resuming' if resume else 'running'} -> {out}")
        self.state[name] = {
            "key": key,
            "status": "running",
            "settings": _changed(settings),
            "seconds": prev.get("seconds", 0.0) if resume else 0.0,
        }
        self._save()
        t0 = time.time()
        try:
            if training or self.main:  # the rest: rank 0 alone, the others wait
                fn(*args, settings)
            self.dist.barrier()
        finally:
            self.state[name]["seconds"] = round(self.state[name]["seconds"] + time.time() - t0, 2)
            self._save()
        self.state[name].update(status="done", reused=False)
        self.ran.add(name)
        self._save()

    def _baseline(self, st: G.Stage):
        """TF-IDF + logistic regression on the same split and held-out documents as the classifier."""
        own = self.cfg.get(st.kind.section, {})
        changes = {"out": str(self.dir / st.folder)}
        for key in ("valid_frac", "limit_train"):  # the classifier's training documents, unless set here
            if key not in own:
                changes[key] = getattr(self.settings(G.CLASSIFIER.section), key)
        if "split" not in own:
            changes["split"] = self.settings(G.EVALUATE.section).split
        self._stage(st, _baseline, [self.data], self.settings(st.kind.section, **changes))

    def _size(self, data, mode, directions):
        """Size the LM fine-tuning and the classifier to the data or to the budget, once per run: the plan is
        kept in stages.json (a resumed run must not re-plan from a new speed measurement, or its stages'
        keys would change and they would start afresh)."""
        rc = self.rc
        budgets = {
            "run": rc.budget,
            G.FINETUNE_LM.section: rc.finetune_budget,
            G.CLASSIFIER.section: rc.classifier_budget,
        }
        if rc.sizing == "fixed" and all(v is None for v in budgets.values()):
            return
        fine = self.settings(G.FINETUNE_LM.section, quiet=True)
        clas = self.settings(G.CLASSIFIER.section, quiet=True)
        folder = _lm_folder(str(rc.folder)) if mode == "from" else None
        key = _key(
            self.keys[G.TOKENIZE.name],
            budgets,
            rc.sizing,
            dataclasses.asdict(fine),
            dataclasses.asdict(clas),
            mode,
            folder,
            directions,
        )
        if not self.main:  # rank 0 plans (and probes); the others read its plan
            self.dist.barrier()
            self.state["_plan"] = read_json(self.state_path)["_plan"]
            self.plan = self.state["_plan"]["plan"]
            return
        try:
            self._plan(key, data, mode, directions, budgets, fine, clas, folder)
        finally:
            self.dist.barrier()

    def _plan(self, key, data, mode, directions, budgets, fine, clas, folder):
        from . import budget as B

        prev = self.state.get("_plan") or {}
        if prev.get("key") == key:
            self.plan = prev["plan"]
            self._say("sizing: the plan made when this run started")
            return
        from ..text.store import TokenStore

        t0 = time.time()
        store = TokenStore(data)
        lm_tokens = store.split("lm_train").n_tokens if mode == "from" and store.has_split("lm_train") else None
        if all(v is None for v in budgets.values()):
            from ..classifier.task import holdout
            from ..text.store import labelled

            split = store.split(clas.train_split)
            labels = split.labels
            n_labelled = int(labelled(labels).sum())
            n_docs = n_labelled
            if clas.valid_frac:
                n_docs = len(holdout(labels, clas.valid_frac)[0])
            if clas.limit_train:
                n_docs = min(n_docs, clas.limit_train)
            n_tokens = round(split.n_tokens * n_docs / max(1, len(labels)))  # the training documents' share
            spe = max(1, (lm_tokens or 0) // (fine.bs * fine.bptt))
            plan = B.size_to_data(lm_tokens, fine.bs * fine.bptt, spe, n_docs, clas.stages, n_tokens)
            plan["seconds"] = {}
        else:
            from ..stages.classifier import probe_classifier
            from ..stages.lm import probe_finetune

            self._say("sizing: measuring this machine's speed (a few training steps of each model)")
            lm = probe_finetune(data, folder, fine) if mode == "from" else None
            cl = probe_classifier(data, folder, clas)
            import torch

            if self.dist.world() > 1 and torch.cuda.is_available():
                # rank 0 probed the whole batch on one GPU; the ranks will split it (CPU ranks share the cores)
                for probe in (lm, cl):
                    if probe:
                        probe["train_s_per_token"] /= self.dist.world()
            ev = self.settings(G.EVALUATE.section)
            split = ev.split or ("test" if store.has_split("test") else "valid")
            test_tokens = store.split(split).n_tokens
            spent = sum(self.state.get(n, {}).get("seconds", 0.0) for n in self.order)  # the stages before sizing
            spent += time.time() - t0
            total = B.parse_duration(budgets["run"]) if budgets["run"] is not None else math.inf
            plan = B.size_to_budget(
                total,
                spent,
                lm,
                cl,
                test_tokens,
                clas.stages,
                lm_tokens=lm_tokens,
                directions=directions,
                lm_budget_s=None if self.rc.finetune_budget is None else B.parse_duration(self.rc.finetune_budget),
                clas_budget_s=(
                    None if self.rc.classifier_budget is None else B.parse_duration(self.rc.classifier_budget)
                ),
            )
            plan["budget_s"] = None if math.isinf(total) else total
            plan["probe"] = {G.FINETUNE_LM.section: lm, G.CLASSIFIER.section: cl}
        for line in plan["lines"]:
            self._say(f"sizing: {line}")
        self.plan = plan
        self.state["_plan"] = {"key": key, "plan": plan, "seconds": round(time.time() - t0, 2)}
        self._save()

    def _backward_decided(self) -> bool:
        """backwards = "auto", at the first backward stage: train that direction too if the run has time for it
        (`budget.backward_fits`, from the forward direction's own time). Decided once per forward direction and
        kept in stages.json, so that a resumed run goes the same way; without it, the backward stages are left out
        of the run and of the evaluation. -> whether they run."""
        from . import budget as B

        fwd = [n for n, s in self.stages.items() if s.kind in G.DIRECTIONAL and not s.backwards]
        key = _key([self.keys.get(n) for n in fwd])
        prev = self.state.get("_backward") or {}
        if self.main and prev.get("key") != key:  # rank 0 decides; the others read its decision
            forward_s = sum(self.state.get(n, {}).get("seconds", 0.0) for n in fwd)
            spent = sum(self.state.get(n, {}).get("seconds", 0.0) for n in self.order)
            spent += (self.state.get("_plan") or {}).get("seconds", 0.0)
            eval_s = 2 * (self.plan.get("seconds") or {}).get("evaluate", 0.0)
            budget = B.parse_duration(self.rc.budget) if self.rc.budget is not None else None
            train, line = B.backward_fits(spent, forward_s, eval_s, budget)
            prev = {"key": key, "train": train, "line": line}
            self.state["_backward"] = prev
            self._save()
            self._say(line)
        self.dist.barrier()
        if not self.main:
            prev = read_json(self.state_path)["_backward"]
        if not prev["train"]:
            self.stages = {n: s for n, s in self.stages.items() if not s.backwards}
            bwd = G.name_of(G.CLASSIFIER, True)
            for n, s in self.stages.items():
                if bwd in s.inputs:
                    self.stages[n] = dataclasses.replace(s, inputs=tuple(i for i in s.inputs if i != bwd))
        return prev["train"]

    def _lr_find(self, st: G.Stage):
        """A side stage (nothing reads it): the lr finder on the language model that the next stage
        trains: the fresh one (scratch) or the pretrained one's frozen phase (corpus, from)."""
        mode = self.rc.mode
        train = self.settings(G.FINETUNE_LM.section if mode in ("corpus", "from") else G.SCRATCH_LM.section)
        # the training stage's batch shape and threads, unless [lr_find] sets its own
        own = self.cfg[st.kind.section]
        common = {f: getattr(train, f) for f in ("bs", "bptt", "threads", "sampled") if f not in own}
        extra = None
        if mode == "scratch":
            s = self.settings(st.kind.section, **common, preset=train.preset, arch=train.arch)
            pretrained = None
        elif mode == "corpus":
            s = self.settings(st.kind.section, **common, frozen=True)
            pretrained = str(self.dir / G.folder_of(G.PRETRAIN))
        else:
            s = self.settings(st.kind.section, **common, frozen=True)
            pretrained = _lm_folder(str(self.rc.folder))
            extra = _file_key(Path(pretrained) / "model.safetensors")
        out = self.dir / st.folder
        self._stage(st, lambda d, s: api.lr_find_lm(d, out, pretrained, s), [self.data], s, extra)

    def _pretrain(self, st: G.Stage):
        """[pretrain] mode = corpus: an LM pretrained on a general corpus, fine-tuned next."""
        corpus = [str(Path(p)) for p in self.rc.corpus]
        missing = [p for p in corpus if not Path(p).exists()]
        if missing:
            raise UlmfitError(f"[pretrain] corpus file {missing[0]}: no such file")
        self._stage(
            st,
            api.pretrain,
            [corpus, self.dir / st.folder],
            self.settings(st.kind.section, backwards=st.backwards),
            extra_key=[_file_key(p) for p in corpus],
        )

    def _finetune_lm(self, st: G.Stage):
        """A pretrained LM (this run's pretrain stage, or [pretrain] folder) fine-tuned on the target texts."""
        extra = None
        if self.rc.mode == "corpus":
            start = str(self.dir / G.folder_of(G.PRETRAIN, st.backwards))
        else:
            start = _lm_folder(str(self.rc.folder) + (G.BWD if st.backwards else ""))
            extra = _file_key(Path(start) / "model.safetensors")
        self._stage(
            st,
            api.finetune_lm,
            [self.data, start, self.dir / st.folder],
            self.settings(st.kind.section),
            extra_key=extra,
        )

    def _lm(self, st: G.Stage):
        """[pretrain] mode = scratch: an LM of the target texts alone."""
        self._stage(
            st, api.pretrain, [self.data, self.dir / st.folder], self.settings(st.kind.section, backwards=st.backwards)
        )

    def _lm_of(self, st: G.Stage) -> str | None:
        """The folder of the LM stage a stage reads, if any (mode none: no LM)."""
        lm = [self.stages[i] for i in st.inputs if self.stages[i].kind in (G.FINETUNE_LM, G.SCRATCH_LM)]
        return str(self.dir / lm[0].folder) if lm else None

    def _classifier(self, st: G.Stage):
        self._stage(
            st,
            api.train_classifier,
            [self.data, self.dir / st.folder, self._lm_of(st)],
            self.settings(st.kind.section, backwards=st.backwards),
        )

    def _self_train(self, st: G.Stage):
        """Rounds of new forward classifiers on the labels + the unlabelled texts they label."""
        # [self_train] holds only its own keys (config.validate): every other setting is [classifier]'s
        s = self.settings(st.kind.section, **dataclasses.asdict(self.settings(G.CLASSIFIER.section)))
        self._stage(
            st, _self_train, [self.data, self.dir / st.folder, self._lm_of(st), self.dir / G.folder_of(G.CLASSIFIER)], s
        )

    def _evaluate(self, st: G.Stage):
        # With a hold-out of the train split, the epoch that did best on it is the model evaluated (selection
        # never saw the test split); validating on the test split itself, only the last epoch is fair.
        d = self.dir
        valid_frac = self.settings(G.CLASSIFIER.section).valid_frac
        pick = "best" if valid_frac else ""
        bwd = G.name_of(G.CLASSIFIER, True)
        ens = [str(d / self.stages[bwd].folder / pick)] if bwd in st.inputs else []
        s = dataclasses.replace(self.settings(st.kind.section), ensemble=ens, out=str(d / st.folder))
        if s.blend == "baseline":  # this run's own baseline stage. Only single-label data blend, and only with a
            # hold-out to choose the weight on: otherwise the report has no blend rather than the run an error.
            clas_config = json.loads((d / G.folder_of(G.CLASSIFIER) / "config.json").read_text())
            multi = (clas_config.get("classifier") or {}).get("multi_label")
            own = not multi and valid_frac
            s = dataclasses.replace(s, blend=str(d / G.folder_of(G.BASELINE)) if own else None)
        final = G.final_classifier(self.rc)
        self._stage(st, _evaluate, [str(d / final.folder / pick), self.data], s)

    def run(self):
        # Under torchrun rank 0 holds the lock for the run's ranks (which only read stages.json).
        with _run_lock(self.dir) if self.main else contextlib.nullcontext():
            self.state = read_stages(self.state_path, redo_all=self.force_from == G.PREPARE.name)
            return self._run_stages()

    def _run_stages(self):
        t0 = time.time()
        run = {
            G.PREPARE: self._prepare,
            G.TOKENIZE: self._tokenize,
            G.BASELINE: self._baseline,
            G.PRETRAIN: self._pretrain,
            G.LR_FIND: self._lr_find,
            G.FINETUNE_LM: self._finetune_lm,
            G.SCRATCH_LM: self._lm,
            G.CLASSIFIER: self._classifier,
            G.SELF_TRAIN: self._self_train,
            G.EVALUATE: self._evaluate,
        }
        sized = False
        for name in list(self.stages):
            st = self.stages.get(name)
            if st is None:  # a backward stage that backwards = "auto" left out
                continue
            if st.kind.sized and not sized:  # once, after the data stages and before any LM or classifier
                # "auto" plans the forward direction; the backward one is added only if the run has time
                self._size(self.data, self.rc.mode, 2 if self.rc.backwards is True else 1)
                sized = True
            if st.backwards and self.rc.backwards == "auto" and not self._backward_decided():
                continue
            run[st.kind](st)
        from .report import write_report

        self.state["_total_seconds"] = round(time.time() - t0, 2)
        self._save()
        if not self.main:
            return {}
        return write_report(self)


def _baseline(data, settings):
    Path(settings.out).mkdir(parents=True, exist_ok=True)
    return api.baseline(data, settings)


def _self_train(data, out, lm, start, settings):
    return api.self_train(data, out, lm, settings, start=start)


def _evaluate(model, data, settings: EvaluateSettings):
    assert settings.out is not None, "the runner names the evaluation folder"
    Path(settings.out).mkdir(parents=True, exist_ok=True)
    return api.evaluate(model, data, settings)


def _file_key(path):
    from ..data.dataset import file_key

    return file_key(path)
