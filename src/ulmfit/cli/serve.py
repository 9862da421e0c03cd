"""`ulmfit serve` (a classifier behind an HTTP API) and `ulmfit explain` (why a text got its label)."""

from __future__ import annotations

from ..settings import ExplainSettings, ServeSettings
from .options import Command, add_commands, arg

CLASSIFIER = arg("model_dir", metavar="FOLDER", help="a classifier folder")


def _serve(a, s):
    from ..serve import serve

    serve(a.model_dir, s)


def _explain(a, s):
    import os

    from ..inference import TextClassifier, set_threads

    if s.html:
        from ..io import check_output_file

        check_output_file(s.html)
    set_threads(s.threads or os.cpu_count() or 1)
    r = TextClassifier.load(a.model_dir, int8=False).explain(a.text, s.steps)
    print(
        f"{r['label']}  {r['probability']:.4f}  (baseline {r['baseline_probability']:.4f}, scores add up to "
        f"{r['total']:+.4f})"
    )
    for t, v in zip(r["tokens"], r["scores"]):
        print(f"{v:+.4f}  {t}")
    if s.html:
        from ..explain import to_html
        from ..io import write_text

        write_text(s.html, to_html(r))
        print(f"wrote {s.html}")


COMMANDS = [
    Command(
        "serve",
        "serve a classifier over HTTP: POST /predict, /explain, GET /health, /info, and a page at /",
        "Load a classifier folder once (with --ensemble, --blend: as predict does) and answer HTTP requests: "
        'POST /predict {"texts": [...]} -> {"predictions": [...]} in input order; POST /explain {"text": ...} '
        "-> the label and a score per token; GET /health, GET /info (classes, config, limits, versions); GET / "
        "a page to try texts on. Concurrent requests are batched together (--batch-ms, --bs). Limits answer JSON "
        "errors: 413 (--max-body, --max-texts, --max-chars), 503 + Retry-After (--max-queue), 504 (--timeout), "
        "422 bad JSON or types. SIGTERM / Ctrl-C finishes the requests in flight. See docs/serving.md.",
        _serve,
        ServeSettings,
        [CLASSIFIER],
        "example: ulmfit serve models/imdb-clas --int8 --port 8000",
    ),
    Command(
        "explain",
        "show how much each token of a text brings to its predicted label",
        "Integrated gradients on the input embeddings: each token's score is its share of the predicted "
        "label's probability over an all-zero-embedding baseline (the scores add up to the difference). Prints "
        "the label, then one line per token (markers such as xxmaj folded into their word); --html writes a "
        "standalone page with the tokens shaded. Uses the float weights (also for a folder marked int8).",
        _explain,
        ExplainSettings,
        [CLASSIFIER, arg("text", metavar="TEXT", help="the text to explain")],
        "example: ulmfit explain models/imdb-clas 'A wonderful film.' --html why.html",
    ),
]


def register(sub):
    add_commands(sub, COMMANDS)
