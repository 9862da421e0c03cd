"""One default per knob (issue 25): core code names the settings' defaults instead of repeating them.

Two checks over the core modules (src/ulmfit minus cli/, run/, pretrained/ and settings.py itself):
- no public function, method, class or dataclass has a parameter default that is written as a literal and
  equals a default that a settings field of the same name defines (`bptt=70`, `max_vocab=60000`, `bs=64`):
  such a default is a reference to the one definition (`bptt=LMDataSettings.bptt`) or the argument is required;
- the literals the issue counted (60000, bptt's 70, the subset seed 1234, the paper's stages) appear as code
  only where they are defined (comments and docstrings may name them).
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import io
import pkgutil
import tokenize
from pathlib import Path

import ulmfit
import ulmfit.settings as S

SRC = Path(ulmfit.__file__).parent
NOT_CORE = ("cli", "run", "pretrained")  # the CLI and the runner may name their flags and keys
# Defaults that are not knobs: off switches, identity factors, "decide later". A settings field with one of
# these as default says nothing about a core parameter of the same name that has it too.
NEUTRAL = (None, True, False, 0, 1)

# (qualified name, parameter) -> why its literal default is not a repeat of the settings' one.
ALLOWED = {
    # folder format: what a config.json written before "arch" existed means; it must not follow the CLI default
    ("ulmfit.models.config.ModelConfig", "arch"): "folder format",
}


def _is_neutral(v) -> bool:
    if isinstance(v, (list, tuple, dict, set)):
        return len(v) == 0
    return any(v is n or (type(v) in (int, float) and not isinstance(n, bool) and v == n) for n in NEUTRAL)


def _norm(v):
    return tuple(v) if isinstance(v, list) else v


def settings_defaults() -> dict:
    """field name -> the defaults that settings fields of that name have (neutral ones left out)."""
    out = {}
    for cls in vars(S).values():
        if isinstance(cls, type) and dataclasses.is_dataclass(cls):
            for f in dataclasses.fields(cls):
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    continue
                v = S.default(cls, f.name)
                if not _is_neutral(v):
                    out.setdefault(f.name, []).append(_norm(v))
    return out


def core_modules():
    for m in pkgutil.walk_packages(ulmfit.__path__, "ulmfit."):
        parts = m.name.split(".")
        if parts[1] in NOT_CORE or m.name in ("ulmfit.settings", "ulmfit.__main__"):
            continue
        yield importlib.import_module(m.name)


def _is_literal(node) -> bool:
    """The expression is written as a value (70, (0.8, 0.7), 20 * 70, field(default=70)), naming nothing."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return all(_is_literal(e) for e in node.elts)
    if isinstance(node, ast.UnaryOp):
        return _is_literal(node.operand)
    if isinstance(node, ast.BinOp):
        return _is_literal(node.left) and _is_literal(node.right)
    if isinstance(node, ast.Lambda):
        return _is_literal(node.body)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "field":
        kw = {k.arg: k.value for k in node.keywords}
        inner = kw.get("default", kw.get("default_factory"))
        return inner is not None and _is_literal(inner)
    return False


_TREES: dict = {}


def _default_nodes(obj) -> dict:
    """parameter -> the AST of its default as written, for a function or a class (its dataclass fields and
    its __init__), searching the classes it inherits from too."""
    out = {}
    for owner in (reversed(obj.__mro__) if inspect.isclass(obj) else [obj]):
        mod = getattr(owner, "__module__", "") or ""
        if not mod.startswith("ulmfit."):
            continue
        path = inspect.getsourcefile(owner)
        if path not in _TREES:
            _TREES[path] = ast.parse(Path(path).read_text())
        node = _TREES[path]
        for name in owner.__qualname__.split("."):
            node = next((n for n in ast.iter_child_nodes(node) if getattr(n, "name", None) == name), None)
            if node is None:
                break
        if node is None:
            continue
        if isinstance(node, ast.ClassDef):
            for n in node.body:
                if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name) and n.value is not None:
                    out[n.target.id] = n.value
            node = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
            if node is None:
                continue
        a = node.args
        pos = a.posonlyargs + a.args
        out.update({p.arg: d for p, d in zip(pos[len(pos) - len(a.defaults):], a.defaults)})
        out.update({p.arg: d for p, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None})
    return out


def _callables(mod):
    for name, obj in vars(mod).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
            continue
        if inspect.isfunction(obj):
            yield f"{mod.__name__}.{name}", obj
        elif inspect.isclass(obj):
            yield f"{mod.__name__}.{name}", obj
            for mname, m in vars(obj).items():
                f = m.__func__ if isinstance(m, (classmethod, staticmethod)) else m
                if inspect.isfunction(f) and not mname.startswith("_"):
                    yield f"{mod.__name__}.{name}.{mname}", f


def repeated_defaults() -> list[str]:
    known = settings_defaults()
    found = []
    for mod in core_modules():
        for qual, obj in _callables(mod):
            try:
                params = inspect.signature(obj).parameters.values()
            except (TypeError, ValueError):
                continue
            nodes = None
            for p in params:
                if p.default is inspect.Parameter.empty or p.name not in known or _is_neutral(p.default):
                    continue
                if _norm(p.default) not in known[p.name] or (qual, p.name) in ALLOWED:
                    continue
                nodes = nodes if nodes is not None else _default_nodes(obj)
                node = nodes.get(p.name)
                if node is None or _is_literal(node):
                    found.append(f"{qual}: {p.name}={p.default!r}")
    return found


def test_core_signatures_do_not_repeat_a_settings_default():
    assert repeated_defaults() == []


def test_the_check_sees_literals_and_lets_references_pass():
    # the checker itself, on the forms it must tell apart
    def literal(bptt=70, max_len=20 * 70, head=[50]):  # noqa: B006
        pass

    def reference(bptt=S.LMDataSettings.bptt, max_len=S.default(S.TrainClassifierSettings, "max_len")):  # noqa: B008
        pass

    nodes = {"literal": ast.parse(inspect.getsource(literal).strip()).body[0],
             "reference": ast.parse(inspect.getsource(reference).strip()).body[0]}
    lit = [_is_literal(d) for d in nodes["literal"].args.defaults]
    ref = [_is_literal(d) for d in nodes["reference"].args.defaults]
    assert lit == [True, True, True] and ref == [False, False]
    assert _is_literal(ast.parse("field(default_factory=lambda: [0.2, 0.1])", mode="eval").body)
    known = settings_defaults()
    assert 70 in known["bptt"] and 60000 in known["max_vocab"] and 64 in known["bs"] and (50,) in known["head"]
    assert "seed" in known and 0 not in known["seed"]  # neutral defaults (0, False, None) are no knob


# ---------------------------------------------------------------------------- the counted literals

# literal -> the one core file allowed to define it (settings.py defines the others)
COUNTED = {60000: None, 70: None, 1234: "batching/documents.py"}
PAPER_LRS = {2e-2, 1e-2, 5e-3, 1e-3}  # the paper's stages, written as numbers (settings.PAPER_STAGES is the text)


def core_files():
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.split("/")[0] in NOT_CORE or rel == "settings.py":
            continue
        yield rel, path


def counted_literals() -> list[str]:
    found = []
    for rel, path in core_files():
        line_numbers = set()
        for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
            if tok.type == tokenize.NUMBER:
                value = ast.literal_eval(tok.string)
                if type(value) is int and value in COUNTED and COUNTED[value] != rel:
                    found.append(f"{rel}:{tok.start[0]}: {tok.string}")
                if type(value) is float and value in PAPER_LRS:
                    line_numbers.add((tok.start[0], value))
            elif tok.type == tokenize.STRING and S.PAPER_STAGES in tok.string:
                found.append(f"{rel}:{tok.start[0]}: the paper's stages as text")
        by_line = {}
        for line, v in line_numbers:
            by_line.setdefault(line, set()).add(v)
        found += [f"{rel}:{line}: the paper's stages as numbers" for line, vs in by_line.items() if vs == PAPER_LRS]
    return found


def test_counted_literals_are_defined_once():
    assert counted_literals() == []


def test_the_one_definitions_are_what_the_code_uses():
    from ulmfit.batching.documents import SUBSET_SEED
    from ulmfit.classifier.task import PAPER_STAGES, holdout, parse_stages

    assert PAPER_STAGES == parse_stages(S.PAPER_STAGES)
    assert inspect.signature(holdout).parameters["seed"].default == SUBSET_SEED
    assert S.default(S.TrainClassifierSettings, "max_len") == 20 * S.default(S.TrainClassifierSettings, "bptt")
