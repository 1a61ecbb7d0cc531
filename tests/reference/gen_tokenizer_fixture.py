#!/usr/bin/env python3
"""Reference fixtures for the ALBERT tokenizer (`albert/src/tokenizer.rs`, tested by `albert/tests/tokenizer.rs`).

Writes into tests/fixtures/tokenizer/ (run from the repository root):

  botchan.txt                      the sentencepiece sdist's test/botchan.txt, byte for byte (Project Gutenberg
                                   eBook #8868, "Botchan" by Natsume Soseki, translated by Yasotaro Morri: public
                                   domain in the USA; the Gutenberg licence header is kept inside the file)
  botchan_en_unigram_1000.model    the sdist's test model (English unigram, 1,000 pieces, nfkc), unchanged
  botchan_en_unigram_1000.json     the same model as a Hugging Face tokenizer.json, made by the `tokenizers`
                                   package (`SentencePieceUnigramTokenizer.from_spm`)
  botchan_en_unigram_1000.ids.gz   sentencepiece's ids for every line of botchan.txt: one line of
                                   space-separated ids per input line (an empty line for an empty input)
  sp_edge_cases.json               sentencepiece's ids (botchan model) for a few texts with odd whitespace and
                                   characters outside the vocabulary
  albert_style_1000.model          a 1,000-piece unigram model trained here with the ALBERT README's spm_train
                                   flags (pad=0 unk=1 [CLS]=2 [SEP]=3 [MASK]=4, user-defined ( ) " - . – £ €,
                                   nmt_nfkc) on the ALBERT-preprocessed botchan lines plus number lines
  random_lines.txt                 500 seeded random lines (digit runs, punctuation, accents, CJK, odd spaces) that
                                   provoke near-ties and unknown pieces
  random_lines.ids.gz              sentencepiece's ids for them: the botchan model's, then the ALBERT-style ones
  botchan_whole.ids.gz             the botchan model's ids for all lines joined by spaces as ONE input (~91k
                                   pieces: long enough for sentencepiece's score re-basing at |score| > 1e5)
  albert_extra.txt                 extra test lines for the ALBERT pipeline (accents, case, quotes, digit-commas)
  albert_style_1000.ids.gz         ids from HF's slow AlbertTokenizer recipe (preprocess_text + sentencepiece +
                                   the digit-comma rule, re-implemented below) for every botchan line and then
                                   every albert_extra.txt line, same format as above

"Lines" are the file split on b"\\n" with one trailing b"\\r" removed (Rust's `str::lines`); the UTF-8 BOM
at the start of botchan.txt stays part of the first line.

Needs: pip install sentencepiece==0.2.3 protobuf tokenizers; the sentencepiece sdist unpacked:
  pip download -q --no-deps --no-binary=sentencepiece --no-build-isolation sentencepiece==0.2.3 -d /tmp/sp
  tar xzf /tmp/sp/sentencepiece-0.2.3.tar.gz -C /tmp/sp sentencepiece-0.2.3/test/
  python3 tests/reference/gen_tokenizer_fixture.py /tmp/sp/sentencepiece-0.2.3/test
"""

import gzip
import json
import os
import random
import shutil
import sys
import unicodedata

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2

# tokenizers' from_spm imports the generated protobuf module under this bare name.
sys.modules.setdefault("sentencepiece_model_pb2", sentencepiece_model_pb2)
import tokenizers  # noqa: E402
from tokenizers import SentencePieceUnigramTokenizer  # noqa: E402

SPIECE_UNDERLINE = "\u2581"
OUT = os.path.join("tests", "fixtures", "tokenizer")


def read_lines(path):
    data = open(path, "rb").read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [(l[:-1] if l.endswith(b"\r") else l).decode("utf-8") for l in lines]


def write_ids_gz(path, rows):
    text = "".join(" ".join(str(i) for i in row) + "\n" for row in rows)
    # mtime=0 and no file name: the same input gives the same bytes.
    with open(path, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as f:
            f.write(text.encode("utf-8"))


# --- HF slow AlbertTokenizer (transformers tokenization_albert.py), defaults do_lower_case=True,
# remove_space=True, keep_accents=False.
def preprocess_text(inputs):
    outputs = " ".join(inputs.strip().split())
    outputs = outputs.replace("``", '"').replace("''", '"')
    outputs = unicodedata.normalize("NFKD", outputs)
    outputs = "".join([c for c in outputs if not unicodedata.combining(c)])
    return outputs.lower()


def albert_tokenize(sp, text):
    pieces = sp.encode(text, out_type=str)
    new_pieces = []
    for piece in pieces:
        if len(piece) > 1 and piece[-1] == "," and piece[-2].isdigit():
            cur_pieces = sp.encode(piece[:-1].replace(SPIECE_UNDERLINE, ""), out_type=str)
            if piece[0] != SPIECE_UNDERLINE and cur_pieces[0][0] == SPIECE_UNDERLINE:
                if len(cur_pieces[0]) == 1:
                    cur_pieces = cur_pieces[1:]
                else:
                    cur_pieces[0] = cur_pieces[0][1:]
            cur_pieces.append(piece[-1])
            new_pieces.extend(cur_pieces)
        else:
            new_pieces.append(piece)
    return new_pieces


def albert_ids(sp, line):
    return [sp.piece_to_id(p) for p in albert_tokenize(sp, preprocess_text(line))]


EDGE_TEXTS = [
    "",
    " ",
    "   ",
    "  a  b  ",
    "a\tb",
    "a\u3000b ",
    "a\u3000",
    "x\r",
    "\u00a0lead and trail\u00a0",
    "\uff48\uff45\uff4c\uff4c\uff4f \u2460",
    "e\u0301 \u00f1 \u6f22\u5b57\u6f22 \u5b57",
    "\u2028x",
    "9,9 12,000,000",
    "I have never been so happy in my life.",
    "Don't stop -- it's 5 o'clock!!",
    "<s> hi </s> <unk> <pad>",
]

ALBERT_EXTRA = [
    "H\u00e9llo W\u00f6rld, ``quoted'' text and ''more``.",
    "It cost 12,000 yen, 9,9 and 1,2,3, then 2,500,000, or 7,",
    "  Multiple   spaces\tand\ttabs \u00a0 here  ",
    "\u00c0\u00c9\u00ce\u00d5\u00dc \u00e7\u00f1 Stra\u00dfe \ufb01ne \u2460 x\u00b2",
    "(Parens) and - dashes \u2013 and \u00a35 \u20ac10.",
    "THE QUICK BROWN FOX, 1,000 TIMES.",
    "",
    "9,",
    "a1,b 3,c",
    "\u0939\u093f\u0928\u094d\u0926\u0940 \u0e17\u0e35\u0e48",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 co\u00f6perate",
    "In 1,905, 1,906, and 1,907, he was 19, 20, and 21, years old.",
]


def main():
    sdist_test = sys.argv[1] if len(sys.argv) > 1 else "/tmp/sp/sentencepiece-0.2.3/test"
    os.makedirs(OUT, exist_ok=True)
    src_txt = os.path.join(sdist_test, "botchan.txt")
    src_model = os.path.join(sdist_test, "botchan_en_unigram_1000.model")
    shutil.copyfile(src_txt, os.path.join(OUT, "botchan.txt"))
    shutil.copyfile(src_model, os.path.join(OUT, "botchan_en_unigram_1000.model"))
    lines = read_lines(src_txt)
    assert len(lines) == 4288, len(lines)

    # 1. botchan unigram model: sentencepiece ids, and the tokenizer.json made by `tokenizers`.
    sp = spm.SentencePieceProcessor(model_file=src_model)
    ref = [sp.encode(l) for l in lines]
    write_ids_gz(os.path.join(OUT, "botchan_en_unigram_1000.ids.gz"), ref)
    hf = SentencePieceUnigramTokenizer.from_spm(src_model)
    hf_json = os.path.join(OUT, "botchan_en_unigram_1000.json")
    hf.save(hf_json, pretty=True)
    hf2 = tokenizers.Tokenizer.from_file(hf_json)
    bad = sum(1 for l, r in zip(lines, ref) if hf2.encode(l).ids != r)
    assert bad == 0, f"tokenizer.json differs from sentencepiece on {bad} lines"
    # Golden example (data.md C).
    golden = "I have never been so happy in my life."
    assert sp.encode(golden) == [9, 76, 398, 153, 71, 302, 29, 29, 34, 20, 45, 598, 6]

    edge = [{"text": t, "ids": sp.encode(t), "pieces": sp.encode(t, out_type=str)} for t in EDGE_TEXTS]
    with open(os.path.join(OUT, "sp_edge_cases.json"), "w", encoding="utf-8") as f:
        json.dump(edge, f, ensure_ascii=True, indent=1)
        f.write("\n")

    # 2. An ALBERT-style model (ALBERT README spm_train flags), trained on preprocessed botchan.
    numbers = [
        f"in {1000 + 37 * i:,}, about {i * 1234567 % 99991:,}, or {i % 10},{i % 7} of {i}, them."
        for i in range(400)
    ]
    train_lines = [preprocess_text(l) for l in lines + numbers]
    train_lines = [l for l in train_lines if l]
    spm.set_random_generator_seed(12345)
    model_path = os.path.join(OUT, "albert_style_1000")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(train_lines),
        model_prefix=model_path,
        vocab_size=1000,
        model_type="unigram",
        pad_id=0,
        unk_id=1,
        bos_id=-1,
        eos_id=-1,
        control_symbols=["[CLS]", "[SEP]", "[MASK]"],
        user_defined_symbols=["(", ")", '"', "-", ".", "\u2013", "\u00a3", "\u20ac"],
        character_coverage=0.99995,
        num_threads=1,
        shuffle_input_sentence=False,
        split_by_number=False,
        minloglevel=2,
    )
    os.remove(model_path + ".vocab")
    asp = spm.SentencePieceProcessor(model_file=model_path + ".model")
    pieces = [asp.id_to_piece(i) for i in range(5)]
    assert pieces == ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"], pieces
    with open(os.path.join(OUT, "albert_extra.txt"), "w", encoding="utf-8", newline="\n") as f:
        for l in ALBERT_EXTRA:
            f.write(l + "\n")
    a_lines = lines + ALBERT_EXTRA
    a_ref = [albert_ids(asp, l) for l in a_lines]
    write_ids_gz(os.path.join(OUT, "albert_style_1000.ids.gz"), a_ref)
    fired = sum(
        1
        for l in a_lines
        for p in asp.encode(preprocess_text(l), out_type=str)
        if len(p) > 1 and p[-1] == "," and p[-2].isdigit()
    )
    print(f"digit-comma rule fires {fired} times on the ALBERT-style lines")
    assert fired > 0

    # 3. Random lines, and the whole text as one input.
    rng = random.Random(20240601)
    atoms = ["0", "00", "000", "1", "9", ",", ".", " ", "  ", "a", "aa", "e", "the", "The", "s", "-", "(", ")",
             "\u00e9", "\u00c9", "\u6f22", "\u3000", "\t", "``", "''", "\u2013", "\u00a3", "ing", "I", "\u00df",
             "\ufb01", "\u2460", "'", "!", "\u0301", "x", "z", "q"]
    rnd = ["".join(rng.choice(atoms) for _ in range(rng.randint(0, 40))) for _ in range(500)]
    with open(os.path.join(OUT, "random_lines.txt"), "w", encoding="utf-8", newline="\n") as f:
        for l in rnd:
            assert "\n" not in l and "\r" not in l
            f.write(l + "\n")
    write_ids_gz(
        os.path.join(OUT, "random_lines.ids.gz"), [sp.encode(l) for l in rnd] + [albert_ids(asp, l) for l in rnd]
    )
    whole = sp.encode(" ".join(lines))
    write_ids_gz(os.path.join(OUT, "botchan_whole.ids.gz"), [whole])

    print(
        f"sentencepiece {spm.__version__}, tokenizers {tokenizers.__version__}; "
        f"{len(lines)} botchan lines, {sum(map(len, ref))} ids; "
        f"{len(a_lines)} ALBERT-style lines, {sum(map(len, a_ref))} ids"
    )


if __name__ == "__main__":
    main()
