#!/usr/bin/env python3
"""Peer test: Circuitscope's tokenizer against Hugging Face `tokenizers` itself.

For one CASE, builds a tokenizer.json with the `tokenizers` library (a BPE trained here on a
seeded corpus, with the pre-tokenizer, normalizer, decoder, post-processor and added tokens of
a model family), writes it into a temporary folder, and runs
`circuitscope-cli tokenize FOLDER --batch FILE` on thousands of strings. Every string's ids
must equal `Tokenizer.encode(text, add_special_tokens=True).ids` (our encode adds what the
post-processor adds, as the engine does for a model's prompt), and our decode of those ids must
equal `Tokenizer.decode(ids, skip_special_tokens=False)`. Random id sequences are decoded too:
where our bytes are UTF-8 the texts must be equal; where they are not, ours keeps the bytes
(by design, so decode(encode(s)) == s) and theirs must show U+FFFD there.

usage: peer_tokenizers.py --cli PATH --case NAME [--strings N] [--tmp DIR]
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_strings import test_strings, training_corpus  # noqa: E402

try:
    import tokenizers
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
except ImportError as e:
    sys.exit(f"peer_tokenizers: the pinned `tokenizers` is missing ({e}); run scripts/install-deps")

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
                  r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")
QWEN2_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
                 r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")


def byte_level(case):
    """A byte-level BPE as GPT-2, Llama 3 and Qwen2 ship it."""
    tok = Tokenizer(models.BPE(ignore_merges=(case == "llama3")))
    split = {"gpt2_split": GPT2_PATTERN, "llama3": LLAMA3_PATTERN, "qwen2": QWEN2_PATTERN}.get(case)
    if case == "gpt2":  # GPT-2's own file: the ByteLevel pre-tokenizer with its built-in regex
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    elif case == "gpt2_prefix":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(split), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    if case == "qwen2":
        tok.normalizer = normalizers.NFC()
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=3000, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(training_corpus(15, 3000), trainer)
    if case == "llama3":
        specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
        tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
        tok.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                                          special_tokens=[("<|begin_of_text|>", tok.token_to_id("<|begin_of_text|>"))])])
        extra = specials
    elif case == "qwen2":
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
        # Qwen3's <think> tags are added tokens that are not special.
        tok.add_tokens([AddedToken("<think>", special=False, normalized=False),
                        AddedToken("</think>", special=False, normalized=False)])
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        extra = specials + ["<think>", "</think>"]
    else:
        tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
        # Plain added tokens with each matching option: normalized (matched after the
        # normalizer), single_word, lstrip / rstrip.
        tok.add_tokens([AddedToken("[MASK]", special=False, lstrip=True, rstrip=True),
                        AddedToken("word", single_word=True, normalized=True),
                        AddedToken(" spaced", normalized=False)])
        tok.post_processor = processors.ByteLevel(trim_offsets=True)
        extra = ["<|endoftext|>", "[MASK]", "word", " spaced"]
    return tok, extra


def with_byte_tokens(trained):
    """A sentencepiece-style vocabulary: <unk> <s> </s>, the 256 <0xXX> tokens, then the trained
    pieces (Llama 2 and Gemma lay theirs out alike)."""
    spec = json.loads(trained.to_str())
    head = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    vocab = {t: i for i, t in enumerate(head)}
    for t, _ in sorted(spec["model"]["vocab"].items(), key=lambda kv: kv[1]):
        vocab.setdefault(t, len(vocab))
    return vocab, [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in spec["model"]["merges"]]


def metaspace(case):
    """Sentencepiece-style BPE with byte fallback (Llama 2, Gemma, and the Metaspace variants)."""
    base = Tokenizer(models.BPE(unk_token="<unk>"))
    base.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    # A small alphabet, so that many characters fall back to bytes.
    trainer = trainers.BpeTrainer(vocab_size=1500, min_frequency=2, limit_alphabet=150, show_progress=False,
                                  special_tokens=["<unk>", "<s>", "</s>"])
    base.train_from_iterator(training_corpus(16, 3000), trainer)
    vocab, merges = with_byte_tokens(base)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    sp_decoders = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    bos = "<s>"
    if case == "llama2":  # Llama 2 as converted by transformers (legacy): normalizer, no pre-tokenizer
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tok.decoder = decoders.Sequence(sp_decoders + [decoders.Strip(" ", 1, 0)])
    elif case == "gemma":  # Gemma: spaces become ▁, nothing prepended, no pre-tokenizer
        tok.normalizer = normalizers.Replace(" ", "▁")
        tok.decoder = decoders.Sequence(sp_decoders)
    else:  # metaspace_<scheme>_<split>: the Metaspace pre-tokenizer (Llama 2 non-legacy and others)
        _, scheme, split = case.split("_")
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=scheme, split=split == "split")
        tok.decoder = (decoders.Metaspace(replacement="▁", prepend_scheme=scheme, split=split == "split")
                       if scheme != "always" else decoders.Sequence(sp_decoders + [decoders.Strip(" ", 1, 0)]))
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ["<unk>", "<s>", "</s>"]])
    added = ["<start_of_turn>", "<end_of_turn>"]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in added])
    tok.add_tokens([AddedToken("<mask>", lstrip=True, normalized=False), AddedToken("▁▁", normalized=True),
                    AddedToken("\t", normalized=False)])
    tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B:1",
                                                       special_tokens=[(bos, tok.token_to_id(bos))])
    return tok, ["<s>", "</s>", "<unk>"] + added + ["<mask>", "  ", "\t"]


CASES = ["gpt2", "gpt2_prefix", "gpt2_split", "llama3", "qwen2", "llama2", "gemma"] + [
    f"metaspace_{s}_{p}" for s in ("first", "always", "never") for p in ("split", "nosplit")]


def build(case):
    return metaspace(case) if case in ("llama2", "gemma") or case.startswith("metaspace") else byte_level(case)


def run_cli(cli, folder, lines, tmp):
    path = os.path.join(tmp, "batch.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")
    out = subprocess.run([cli, "--device", "cpu", "tokenize", folder, "--batch", path, "--json"],
                         capture_output=True, timeout=600)
    if out.returncode != 0:
        sys.exit(f"circuitscope-cli failed ({out.returncode}): {out.stderr.decode(errors='replace')}")
    rows = [json.loads(l) for l in out.stdout.decode("utf-8").split("\n") if l]
    if len(rows) != len(lines):
        sys.exit(f"circuitscope-cli printed {len(rows)} lines for {len(lines)} inputs")
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    ap.add_argument("--case", required=True, choices=CASES)
    ap.add_argument("--strings", type=int, default=10000)
    ap.add_argument("--random-decodes", type=int, default=2000)
    ap.add_argument("--tmp", default=None)
    args = ap.parse_args()

    t0 = time.time()
    tok, extra = build(args.case)
    strings = test_strings(1000 + CASES.index(args.case), args.strings, extra)
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        folder = os.path.join(tmp, args.case)
        os.makedirs(folder)
        tok.save(os.path.join(folder, "tokenizer.json"))
        # Reload from the file, so both sides read the very same bytes.
        tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
        theirs = [e.ids for e in tok.encode_batch(strings, add_special_tokens=True)]
        rng = random.Random(7)
        vocab = tok.get_vocab_size(with_added_tokens=True)
        id_lists = [[rng.randrange(vocab) for _ in range(rng.randint(1, 12))] for _ in range(args.random_decodes)]
        ours = run_cli(args.cli, folder, strings + id_lists, tmp)

    failures = []
    for s, want, got in zip(strings, theirs, ours):
        if got["ids"] != want:
            k = next((i for i, (a, b) in enumerate(zip(want, got["ids"])) if a != b), min(len(want), len(got["ids"])))
            failures.append(f"encode {s!r}: first difference at token {k}:\n"
                            f"  tokenizers {[tok.id_to_token(i) for i in want[max(0, k - 3):k + 4]]}\n"
                            f"  ours       {[tok.id_to_token(i) for i in got['ids'][max(0, k - 3):k + 4]]}")
            continue
        ref = tok.decode(want, skip_special_tokens=False)
        if got["text"] != ref:
            failures.append(f"decode of {want} (from {s!r}):\n  tokenizers {ref!r}\n  ours       {got['text']!r}")
    invalid = 0
    for ids, got in zip(id_lists, ours[len(strings):]):
        ref = tok.decode(ids, skip_special_tokens=False)
        if got["valid_utf8"]:
            if got["text"] != ref:
                failures.append(f"decode {ids}:\n  tokenizers {ref!r}\n  ours       {got['text']!r}")
        else:
            invalid += 1  # our bytes are kept; theirs must have replaced something
            if "\ufffd" not in ref:
                failures.append(f"decode {ids}: ours is not UTF-8 but tokenizers gives {ref!r} without U+FFFD")
    for f in failures[:15]:
        print(f)
    print(f"peer_tokenizers {args.case}: tokenizers {tokenizers.__version__}, {len(strings)} strings encoded and "
          f"decoded, {len(id_lists)} random id lists decoded ({invalid} not UTF-8, kept as bytes by design); "
          f"{len(failures)} disagreements; {time.time() - t0:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
