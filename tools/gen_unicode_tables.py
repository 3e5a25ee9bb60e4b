#!/usr/bin/env python3
"""Generates engine/src/text/unicode_tables.h from pinned Unicode databases.

Usage:  python3 tools/gen_unicode_tables.py [--ucd /usr/share/unicode] > engine/src/text/unicode_tables.h
        (with unicodedata2==16.0.0 importable: pip install unicodedata2==16.0.0)

The tables follow the Unicode versions of Hugging Face `tokenizers` 0.23 (checked by the peer
tests, tests/peer/peer_tokenizers.py), which uses two: its regexes (Oniguruma, bundled by the
`onig` crate) know Unicode 16.0's general categories, and its NFC/NFD normalizers (the
unicode-normalization-alignments crate) Unicode 9.0's decompositions and combining classes.

Nothing is taken from the Python that runs the script. The sources, each checked for its version:
  - general categories: the `unicodedata2` package, pinned at 16.0.0 (Unicode 16.0.0; no Debian
    package carries 16.0's UnicodeData.txt yet);
  - case folds, combining classes, decompositions, composition exclusions: the Unicode Character
    Database text files of Debian's `unicode-data` package (/usr/share/unicode, Unicode 15.0.0;
    packaging/apt-packages.txt). Normalization keeps only the characters DerivedAge.txt dates
    9.0 or earlier, which gives Unicode 9.0's tables exactly: the Unicode stability policy
    freezes the decomposition mapping and combining class of an assigned character, and the
    composition exclusions.

The tables are what the tokenizer's regex engine and normalizers need:
  - general category of every assigned code point (\\p{L}, \\p{N}, ... in pre-tokenizer regexes),
  - simple case folding (CaseFolding.txt statuses C and S: case-insensitive groups such as
    Llama 3's (?i:'s|'t|...)),
  - canonical combining classes, canonical decompositions and the primary composites (NFC/NFD).
Hangul syllables are left out of the decomposition tables: they are composed and decomposed
arithmetically (Unicode 3.12).
"""

import argparse
import os
import re
import sys

CATEGORY_VERSION = "16.0.0"
UCD_VERSION = "15.0.0"
NORMALIZATION_VERSION = (9, 0)

MAX_CP = 0x110000
HANGUL_FIRST, HANGUL_LAST = 0xAC00, 0xD7A3

# Order matters: the C++ enum in the header lists them in this order (Cn = 0 = unassigned).
CATEGORIES = [
    "Cn", "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No",
    "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So",
    "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co",
]


def fail(message):
    sys.exit("gen_unicode_tables: " + message)


def ucd_lines(ucd, name):
    """(fields, header) of a UCD file: data lines split at ';' with comments dropped."""
    path = os.path.join(ucd, name)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read().splitlines()
    except OSError as e:
        fail("cannot read %s (install Debian's unicode-data, or pass --ucd): %s" % (path, e))
    header = text[0] if text else ""
    rows = []
    for line in text:
        line = line.split("#", 1)[0].strip()
        if line:
            rows.append([field.strip() for field in line.split(";")])
    return rows, header


def check_version(ucd, name):
    _, header = ucd_lines(ucd, name)
    expected = "# %s-%s.txt" % (name[:-4], UCD_VERSION)
    if header.strip() != expected:
        fail("%s/%s is not Unicode %s (its first line is %r)" % (ucd, name, UCD_VERSION, header))


def code_range(field):
    first, _, last = field.partition("..")
    return int(first, 16), int(last or first, 16)


def read_unicode_data(ucd):
    """{cp: (combining class, decomposition field)} for every assigned code point."""
    rows, _ = ucd_lines(ucd, "UnicodeData.txt")
    data = {}
    pending_first = None
    for fields in rows:
        cp, name = int(fields[0], 16), fields[1]
        ccc, decomposition = int(fields[3]), fields[5]
        if name.endswith(", First>"):
            pending_first = cp
            continue
        if name.endswith(", Last>"):  # a range such as CJK ideographs: no decompositions, ccc 0
            for c in range(pending_first, cp + 1):
                data[c] = (ccc, "")
            pending_first = None
            continue
        data[cp] = (ccc, decomposition)
    return data


def read_ages(ucd):
    rows, _ = ucd_lines(ucd, "DerivedAge.txt")
    ages = {}
    for fields in rows:
        first, last = code_range(fields[0])
        major, minor = fields[1].split(".")
        for cp in range(first, last + 1):
            ages[cp] = (int(major), int(minor))
    return ages


def read_full_composition_exclusions(ucd):
    rows, _ = ucd_lines(ucd, "DerivedNormalizationProps.txt")
    out = set()
    for fields in rows:
        if len(fields) >= 2 and fields[1] == "Full_Composition_Exclusion":
            first, last = code_range(fields[0])
            out.update(range(first, last + 1))
    return out


def runs(value_of):
    """Maximal runs [first, last] of equal values over every code point."""
    out = []
    start, current = 0, value_of(0)
    for cp in range(1, MAX_CP + 1):
        value = value_of(cp) if cp < MAX_CP else None
        if value != current:
            out.append((start, cp - 1, current))
            start, current = cp, value
    return out


def category_ranges():
    try:
        import unicodedata2
    except ImportError:
        fail("the general categories come from unicodedata2==%s: pip install unicodedata2==%s"
             % (CATEGORY_VERSION, CATEGORY_VERSION))
    if unicodedata2.unidata_version != CATEGORY_VERSION:
        fail("unicodedata2 has Unicode %s, not %s" % (unicodedata2.unidata_version, CATEGORY_VERSION))
    index = {name: i for i, name in enumerate(CATEGORIES)}
    return [(a, b, index[c]) for a, b, c in runs(lambda cp: unicodedata2.category(chr(cp))) if c != "Cn"]


def case_folds(ucd):
    rows, _ = ucd_lines(ucd, "CaseFolding.txt")
    folds = [(int(f[0], 16), int(f[2], 16)) for f in rows if f[1] in ("C", "S")]
    folds.sort()
    return folds


def normalization_tables(ucd):
    """(combining-class ranges, decompositions, compositions), Unicode 9.0's."""
    data = read_unicode_data(ucd)
    ages = read_ages(ucd)
    excluded = read_full_composition_exclusions(ucd)
    in_version = {cp for cp in data if ages.get(cp, (99, 0)) <= NORMALIZATION_VERSION}

    cccs = [(a, b, c) for a, b, c in runs(lambda cp: data[cp][0] if cp in in_version else 0) if c != 0]

    decomps = []
    for cp in sorted(in_version):
        mapping = data[cp][1]
        if HANGUL_FIRST <= cp <= HANGUL_LAST or not mapping or mapping.startswith("<"):
            continue  # Hangul, none, or a compatibility mapping (NFKC territory)
        parts = [int(p, 16) for p in mapping.split()]
        if not 1 <= len(parts) <= 2 or not all(p in in_version for p in parts):
            fail("unexpected canonical decomposition of U+%04X: %r" % (cp, mapping))
        decomps.append((cp, parts[0], parts[1] if len(parts) == 2 else 0))

    # Primary composites: canonical decompositions that are not fully excluded from composition
    # (singletons, non-starter decompositions and CompositionExclusions.txt are all in that set).
    comps = sorted((first, second, cp) for cp, first, second in decomps if second != 0 and cp not in excluded)
    return cccs, decomps, comps, data


def check_fast_paths(cccs, decomps, comps):
    # unicode.cpp skips NFC work for text below U+0300; that is only right if nothing there
    # changes under NFC (no combining class, and every decomposition recomposes) and nothing
    # there is the second half of a composition.
    composites = {cp for _, _, cp in comps}
    assert all(first >= 0x300 for first, _, _ in cccs)
    assert all(cp in composites for cp, _, _ in decomps if cp < 0x300)
    assert all(second >= 0x300 for _, second, _ in comps)


def rows_text(items, per_line, fmt):
    lines = []
    for i in range(0, len(items), per_line):
        lines.append("    " + " ".join(fmt(item) for item in items[i:i + per_line]))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ucd", default="/usr/share/unicode",
                    help="Unicode Character Database folder (Debian's unicode-data: /usr/share/unicode)")
    args = ap.parse_args()
    for name in ("DerivedAge.txt", "CaseFolding.txt", "DerivedNormalizationProps.txt"):
        check_version(args.ucd, name)

    cats = category_ranges()
    folds = case_folds(args.ucd)
    cccs, decomps, comps, _ = normalization_tables(args.ucd)
    check_fast_paths(cccs, decomps, comps)
    normalization = "%d.%d.0" % NORMALIZATION_VERSION

    w = sys.stdout.write
    w("#pragma once\n")
    w("// GENERATED by tools/gen_unicode_tables.py: general categories from unicodedata2 %s (Unicode %s);\n"
      "// case folds, and normalization restricted to Unicode %s's characters, from the Unicode Character\n"
      "// Database %s (Debian's unicode-data): the versions Hugging Face tokenizers has.\n"
      % (CATEGORY_VERSION, CATEGORY_VERSION, normalization, UCD_VERSION))
    w("// Do not edit: run tools/gen_unicode_tables.py as its docstring says.\n")
    w("// Included only by unicode.cpp; everything else asks unicode.h.\n")
    w("// clang-format off\n\n")
    w("#include <cstdint>\n\n")
    w("namespace cs::model::unicode::tables {\n\n")
    w("// The general categories' version (\\p{L}, \\p{N}, ... in pre-tokenizer regexes).\n")
    w("inline constexpr char kUnicodeVersion[] = \"%s\";\n" % CATEGORY_VERSION)
    w("// The case folds' version.\n")
    w("inline constexpr char kCaseFoldingUnicodeVersion[] = \"%s\";\n" % UCD_VERSION)
    w("// The combining classes', decompositions' and compositions' version (NFC, NFD).\n")
    w("inline constexpr char kNormalizationUnicodeVersion[] = \"%s\";\n\n" % normalization)

    w("// General categories, in this order; Cn (0) = unassigned, the default outside every range.\n")
    w("enum Category : uint8_t {\n    " + ", ".join(CATEGORIES) + "\n};\n\n")
    w("struct CategoryRange {\n    char32_t first, last;\n    uint8_t category;\n};\n")
    w("// Sorted, disjoint; %d ranges.\n" % len(cats))
    w("inline constexpr CategoryRange kCategoryRanges[] = {\n")
    w(rows_text(cats, 4, lambda r: "{0x%04X, 0x%04X, %s}," % (r[0], r[1], CATEGORIES[r[2]])))
    w("\n};\n\n")

    w("struct CaseFold {\n    char32_t from, to;\n};\n")
    w("// Simple case folding (one code point to one), sorted by `from`; %d entries.\n" % len(folds))
    w("inline constexpr CaseFold kCaseFolds[] = {\n")
    w(rows_text(folds, 6, lambda r: "{0x%04X, 0x%04X}," % r))
    w("\n};\n\n")

    w("struct CombiningClassRange {\n    char32_t first, last;\n    uint8_t ccc;\n};\n")
    w("// Non-zero canonical combining classes, sorted; %d ranges.\n" % len(cccs))
    w("inline constexpr CombiningClassRange kCombiningClasses[] = {\n")
    w(rows_text(cccs, 4, lambda r: "{0x%04X, 0x%04X, %d}," % r))
    w("\n};\n\n")

    w("struct Decomposition {\n    char32_t cp, first, second; // second = 0: a singleton mapping\n};\n")
    w("// Canonical decomposition mappings (one level; apply recursively), sorted; %d entries.\n"
      % len(decomps))
    w("inline constexpr Decomposition kDecompositions[] = {\n")
    w(rows_text(decomps, 4, lambda r: "{0x%04X, 0x%04X, 0x%04X}," % r))
    w("\n};\n\n")

    w("struct Composition {\n    char32_t first, second, composite;\n};\n")
    w("// Primary composites, sorted by (first, second); %d entries.\n" % len(comps))
    w("inline constexpr Composition kCompositions[] = {\n")
    w(rows_text(comps, 4, lambda r: "{0x%04X, 0x%04X, 0x%04X}," % r))
    w("\n};\n\n")
    w("} // namespace cs::model::unicode::tables\n")


if __name__ == "__main__":
    main()
