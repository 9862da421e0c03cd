"""Write the present-day-English part of the shipped LMs' corpus (the en-qrnn cards' "Rebuild"):

  imdb-100k.jsonl          every review of aclImdb_v1.tar.gz (train, test, unsup) in the tarball's order,
                           "<br />" turned into newlines
  gutenberg-every8th.jsonl every 8th document (0, 8, 16, ...) of general-en's gutenberg-part1

then, with general-en's wikipedia-2021-slice beside them:

  ulmfit prepare corpus WIKI OUT/gutenberg-every8th.jsonl OUT/imdb-100k.jsonl --out data --lm-valid-frac 0.02
  ulmfit tokenize data

Usage: python scripts/build_lm_corpus.py ../shared/data OUT_DIR
"""

import json
import lzma
import re
import sys
import tarfile
from pathlib import Path

_REVIEW = re.compile(r"aclImdb/(train|test)/(pos|neg|unsup)/(\d+)_\d+\.txt$")


def write_imdb(tarball: Path, out: Path) -> int:
    n = 0
    with tarfile.open(tarball) as tar, out.open("w", encoding="utf-8") as f:
        for member in tar:
            m = _REVIEW.search(member.name)
            if not (member.isfile() and m):
                continue
            text = tar.extractfile(member).read().decode("utf-8").replace("<br />", "\n")
            f.write(json.dumps({"id": f"imdb-{m[1]}-{m[2]}-{m[3]}", "source": "imdb", "text": text}) + "\n")
            n += 1
    return n


def write_every_8th(src: Path, out: Path) -> int:
    n = 0
    with lzma.open(src, "rt", encoding="utf-8") as f, out.open("w", encoding="utf-8") as g:
        for i, line in enumerate(f):
            if i % 8 == 0:
                g.write(line if line.endswith("\n") else line + "\n")
                n += 1
    return n


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        sys.exit(__doc__)
    data, out = Path(argv[0]), Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    print("imdb-100k.jsonl:", write_imdb(data / "aclImdb_v1.tar.gz", out / "imdb-100k.jsonl"), "reviews")
    print(
        "gutenberg-every8th.jsonl:",
        write_every_8th(data / "general-en" / "gutenberg-part1.jsonl.xz", out / "gutenberg-every8th.jsonl"),
        "books",
    )


if __name__ == "__main__":
    main(sys.argv[1:])
