"""Test strings for the peer tests: seeded, so a failure repeats, and wide enough to reach the
corners of a tokenizer (every script, emoji sequences, control characters, digit and white
space runs, contractions, added-token text inside words)."""

import random
import unicodedata

# Combining marks (non-zero canonical combining class, as this Python knows them) and marks
# from blocks whose classes changed between Unicode versions: NFC reorders and composes them.
MARKS = [chr(c) for c in range(0x300, 0x20000) if unicodedata.combining(chr(c))] + [
    chr(c) for c in (0x0897, 0x10D69, 0x10D6A, 0x10EFD, 0x11F41, 0x1E4EC, 0x1E5EE, 0x1DF6, 0x1DFA, 0x0898, 0x08CA)]

# (first, last) code point ranges, one per script or kind of character.
SCRIPTS = {
    "latin": (0x0041, 0x007A), "latin1": (0x00C0, 0x00FF), "latin_ext": (0x0100, 0x024F),
    "ipa": (0x0250, 0x02AF), "combining": (0x0300, 0x036F), "greek": (0x0370, 0x03FF),
    "cyrillic": (0x0400, 0x04FF), "armenian": (0x0531, 0x058A), "hebrew": (0x0591, 0x05F4),
    "arabic": (0x0600, 0x06FF), "syriac": (0x0700, 0x074F), "thaana": (0x0780, 0x07B1),
    "nko": (0x07C0, 0x07FA), "devanagari": (0x0900, 0x097F), "bengali": (0x0980, 0x09FE),
    "gurmukhi": (0x0A01, 0x0A76), "gujarati": (0x0A81, 0x0AFF), "tamil": (0x0B82, 0x0BFA),
    "telugu": (0x0C00, 0x0C7F), "kannada": (0x0C80, 0x0CF3), "malayalam": (0x0D00, 0x0D7F),
    "sinhala": (0x0D81, 0x0DF4), "thai": (0x0E01, 0x0E5B), "lao": (0x0E81, 0x0EDF),
    "tibetan": (0x0F00, 0x0FDA), "myanmar": (0x1000, 0x109F), "georgian": (0x10A0, 0x10FF),
    "hangul_jamo": (0x1100, 0x11FF), "ethiopic": (0x1200, 0x137C), "cherokee": (0x13A0, 0x13FD),
    "canadian": (0x1400, 0x167F), "ogham": (0x1680, 0x169C), "runic": (0x16A0, 0x16F8),
    "khmer": (0x1780, 0x17F9), "mongolian": (0x1800, 0x18AA), "vietnamese": (0x1EA0, 0x1EF9),
    "greek_ext": (0x1F00, 0x1FFE), "general_punct": (0x2000, 0x206F), "super_sub": (0x2070, 0x209C),
    "currency": (0x20A0, 0x20C0), "letterlike": (0x2100, 0x214F), "number_forms": (0x2150, 0x218B),
    "arrows": (0x2190, 0x21FF), "math": (0x2200, 0x22FF), "box": (0x2500, 0x257F),
    "dingbats": (0x2700, 0x27BF), "braille": (0x2800, 0x28FF), "cjk_punct": (0x3000, 0x303F),
    "hiragana": (0x3041, 0x309F), "katakana": (0x30A0, 0x30FF), "bopomofo": (0x3105, 0x312F),
    "cjk": (0x4E00, 0x9FFF), "yi": (0xA000, 0xA48C), "hangul": (0xAC00, 0xD7A3),
    "private_use": (0xE000, 0xF8FF), "cjk_compat": (0xF900, 0xFAFF), "alpha_pres": (0xFB00, 0xFB4F),
    "arabic_pres": (0xFE70, 0xFEFC), "fullwidth": (0xFF01, 0xFFEE), "specials": (0xFFF0, 0xFFFF),
    "gothic": (0x10330, 0x1034A), "cuneiform": (0x12000, 0x12399), "egyptian": (0x13000, 0x1342E),
    "math_alnum": (0x1D400, 0x1D7FF), "emoji": (0x1F300, 0x1F64F), "transport": (0x1F680, 0x1F6FF),
    "emoji_supp": (0x1F900, 0x1F9FF), "cjk_ext_b": (0x20000, 0x2A6DF), "tags": (0xE0000, 0xE007F),
    "plane15": (0xF0000, 0xF00FF),
    # Scripts of Unicode 15 and 16 (what the regex engine's tables know, newer than many Pythons').
    "kawi": (0x11F00, 0x11F5A), "cjk_ext_h": (0x31350, 0x323AF), "garay": (0x10D40, 0x10D8F),
    "egyptian_ext_a": (0x13460, 0x143FA), "kirat_rai": (0x16D40, 0x16D79), "cjk_ext_i": (0x2EBF0, 0x2EE5D),
}

WHITESPACE = ["\t", "\n", "\r", "\v", "\f", " ", "\u0085", "\u00a0", "\u1680", "\u2000", "\u2002",
              "\u2007", "\u200a", "\u200b", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000",
              "\ufeff", "\r\n", "  ", "\n\n"]
CONTROL = [chr(c) for c in list(range(0, 32)) + [0x7F] + list(range(0x80, 0xA0))]
DIGITS = ["0123456789", "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669",
          "\u0966\u0967\u0968\u0969\u096a\u096b\u096c\u096d\u096e\u096f",
          "\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19", "\u00b2\u00b3\u00b9\u00bc\u00bd\u2155",
          "\u2160\u2161\u2162\u2163"]
EMOJI = ["\U0001F468\u200D\U0001F469\u200D\U0001F467\u200D\U0001F466", "\U0001F3F3\uFE0F\u200D\U0001F308",
         "\U0001F44D\U0001F3FD", "\U0001F1FA\U0001F1F8", "\U0001F1EF\U0001F1F5", "1\uFE0F\u20E3",
         "\u2764\uFE0F", "\U0001F9D1\U0001F3FF\u200D\U0001F4BB", "\U0001F3F4\U000E0067\U000E0062\U000E0073"
         "\U000E0063\U000E0074\U000E007F", "\U0001F600", "\U0001F62D\U0001F62D\U0001F62D", "\u263A",
         "\U0001F469\u200D\u2764\uFE0F\u200D\U0001F48B\u200D\U0001F468"]
WORDS = ("the of and to in is was he for it with as his on be at by had are but from or have an they "
         "which one you were all her she there would their we him been has when who will no more if out "
         "so up said what its about than into them can only other time new some could these two may first "
         "then do any like my now over such our man me even most made after also did many before must "
         "through back years where much your way well down should because each just those people how too "
         "little state good very make world still own see men work long get here between both life being "
         "under never day same another know while last might us great old year off come since against go "
         "came right used take three Hello World GPU Transformer naïve café résumé Zürich São Paulo "
         "Москва мир привет 東京 日本語 中文 你好 世界 안녕하세요 한국어 こんにちは カタカナ "
         "नमस्ते हिन्दी مرحبا العربية שלום עברית Ελληνικά γειά สวัสดี ภาษาไทย ሰላም ქართული "
         "Ꭰ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𐌰𐌱 ﬁnance Ⅻ").split()
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve", "'LL", "'D", "’s",
                "'x", "''", "'"]
PUNCT = list(".,;:!?-_()[]{}<>\"'`~@#$%^&*+=/\\|") + ["...", "—", "–", "«", "»", "“", "”", "¿", "¡", "。", "、",
                                                    "！", "？", "··", "->", "=>", "::", "//", "/*", "*/"]


def random_char(rng):
    kind = rng.random()
    if kind < 0.04:
        c = rng.randint(0, 0x10FFFF)  # any scalar value, unassigned ones too
        return chr(c) if not 0xD800 <= c <= 0xDFFF else "?"
    lo, hi = SCRIPTS[rng.choice(sorted(SCRIPTS))]
    return chr(rng.randint(lo, hi))


def piece(rng, extra):
    """One fragment of a test string."""
    r = rng.random()
    if r < 0.22:
        return rng.choice(WORDS)
    if r < 0.30:
        return " " + rng.choice(WORDS)
    if r < 0.40:
        return "".join(random_char(rng) for _ in range(rng.randint(1, 8)))
    if r < 0.48:
        return rng.choice(WHITESPACE) * rng.randint(1, 3 if rng.random() < 0.8 else 40)
    if r < 0.53:
        return rng.choice(CONTROL)
    if r < 0.60:
        digits = rng.choice(DIGITS)
        return "".join(rng.choice(digits) for _ in range(rng.randint(1, 6 if rng.random() < 0.7 else 60)))
    if r < 0.66:
        return rng.choice(EMOJI)
    if r < 0.72:
        return rng.choice(CONTRACTIONS)
    if r < 0.82:
        return rng.choice(PUNCT)
    if r < 0.86:
        return rng.choice(WORDS).upper()
    if r < 0.93 and extra:
        # Added-token text, whole or cut, inside words or between spaces.
        t = rng.choice(extra)
        if rng.random() < 0.2:
            t = t[: rng.randint(1, max(1, len(t) - 1))]
        return rng.choice(["", " ", "  ", "x", "\n"]) + t + rng.choice(["", " ", "  ", "y", "\n"])
    if r < 0.96:
        # A letter and combining marks in random order (NFC sorts them by class and composes).
        return rng.choice("aeiouAEOnscgkCSZ\u0391\u03b1\u0430\u05d0\u0627\u0915") + "".join(
            rng.choice(MARKS) for _ in range(rng.randint(1, 4)))
    # Decomposed letters (NFC composes them) and Hangul jamo sequences.
    return rng.choice(["e\u0301", "A\u030a", "o\u0308\u0304", "\u1100\u1161\u11a8", "\u1112\u1161",
                       "n\u0303", "\u0915\u094d\u0937", "\u212b", "\u2126", "\uFB01", "s\u0323\u0307"])


def test_strings(seed, count, extra=()):
    """`count` strings; the first ones are fixed edge cases, the rest random."""
    rng = random.Random(seed)
    fixed = ["", " ", "  ", "\n", " \n ", "a", " a", "a ", "hello world", "Hello  world ", "  leading",
             "trailing   ", "\t\ttabs", "1234567890123456789012345678901234567890", "3.14159 2,718 1e-10",
             "don't won't I'm you're we've they'll he'd IT'S", "\u00a0nbsp\u00a0", "\u3000全角\u3000",
             " " * 100, "\n" * 50, "a" * 300, "\U0001F468\u200D\U0001F469\u200D\U0001F467" * 5,
             "".join(CONTROL), "x\u200by", "\ufeffbom"] + [e for t in extra for e in (t, " " + t, t + t, "a" + t + "b")]
    out = list(fixed)
    while len(out) < count:
        n = rng.randint(1, 12) if rng.random() < 0.8 else rng.randint(20, 80)
        out.append("".join(piece(rng, list(extra)) for _ in range(n)))
    return out[:count]


def training_corpus(seed, lines):
    rng = random.Random(seed)
    out = []
    for _ in range(lines):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 15))]
        if rng.random() < 0.5:
            words.append("".join(piece(rng, []) for _ in range(rng.randint(1, 5))))
        out.append(" ".join(words))
    return out
