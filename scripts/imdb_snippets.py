"""A short-text sentiment table made from IMDb, to develop short-text defaults on (like the movie-snippet tables
ulmfit is measured on, which we do not have): one sentence per labelled review, its label the review's.

The sentence is the review's last one of 5 to 40 words without a digit (the verdict, usually; a digit would
let "8/10" give the label away). Train rows come from aclImdb/train, test rows from aclImdb/test, train balanced, test and valid
about so, sampled with a fixed seed; --valid rows (for tuning) come from aclImdb/test reviews that test.csv does not use. The shipped LMs have read every IMDb review (as the recipe's LM does), so a
model's edge here is an upper bound on its edge on snippets it has never read.

Usage: python scripts/imdb_snippets.py ../shared/data/aclImdb_v1.tar.gz OUT_DIR [--train 9000] [--test 1000] [--valid 5000]
"""

import argparse
import csv
import random
import re
import tarfile
from pathlib import Path

_REVIEW = re.compile(r"aclImdb/(train|test)/(pos|neg)/\d+_\d+\.txt$")
_SENTENCE = re.compile(r"[^.!?]+[.!?]+")


def verdict(review: str) -> str | None:
    sentences = [s.strip() for s in _SENTENCE.findall(review.replace("<br />", " "))]
    for s in reversed(sentences):
        if 5 <= len(s.split()) <= 40 and not any(c.isdigit() for c in s):
            return s
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("tarball")
    p.add_argument("out")
    p.add_argument("--train", type=int, default=9000)
    p.add_argument("--test", type=int, default=1000)
    p.add_argument("--valid", type=int, default=5000)
    a = p.parse_args()
    rows = {("train", "pos"): [], ("train", "neg"): [], ("test", "pos"): [], ("test", "neg"): []}
    with tarfile.open(a.tarball) as tar:
        for member in tar:
            m = _REVIEW.search(member.name)
            if member.isfile() and m and (s := verdict(tar.extractfile(member).read().decode("utf-8"))):
                rows[m[1], m[2]].append(s)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    for name, split, n in (("train", "train", a.train), ("test", "test", a.test + a.valid)):
        picked = [(lab, s) for lab in ("pos", "neg") for s in rng.sample(rows[split, lab], n // 2)]
        rng.shuffle(picked)
        if split == "test":  # the first rows are test.csv, the rest valid.csv
            write(out / "valid.csv", picked[a.test :])
            picked = picked[: a.test]
        write(out / f"{name}.csv", picked)


def write(path: Path, rows: list) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["label", "text"])
        w.writerows(rows)
    print(f"{path.name}: {len(rows)} rows")


if __name__ == "__main__":
    main()
