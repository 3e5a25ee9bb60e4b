#include "text/unicode.h"

#include "text/unicode_tables.h"

#include <algorithm>
#include <iterator>
#include <utility>
#include <vector>

namespace cs::model::unicode {

namespace t = tables;

static_assert(static_cast<int>(Category::Co) == t::Co && static_cast<int>(Category::Lu) == t::Lu
        && static_cast<int>(Category::Zs) == t::Zs && static_cast<int>(Category::Cn) == t::Cn,
    "unicode.h's Category must list the categories in the generated tables' order");
static_assert(static_cast<int>(Category::Co) + 1 == kCategoryCount);

namespace {

// Hangul syllables compose and decompose by arithmetic (Unicode 3.12, "Conjoining Jamo Behavior").
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28;
constexpr char32_t kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

// First code point from which NFC can change anything (checked by the generator).
constexpr char32_t kFirstNonTrivialNfc = 0x300;

template<class Range> const Range* findRange(const Range* begin, const Range* end, char32_t cp)
{
    // The last range whose first <= cp, if cp is inside it.
    const Range* it = std::upper_bound(begin, end, cp, [](char32_t v, const Range& r) { return v < r.first; });
    if (it == begin)
        return nullptr;
    --it;
    return cp <= it->last ? it : nullptr;
}

Category computeCategory(char32_t cp)
{
    const auto* r = findRange(std::begin(t::kCategoryRanges), std::end(t::kCategoryRanges), cp);
    return r ? static_cast<Category>(r->category) : Category::Cn;
}

struct Latin1Categories {
    std::array<Category, 256> cats;
    Latin1Categories()
    {
        for (char32_t cp = 0; cp < 256; ++cp)
            cats[cp] = computeCategory(cp);
    }
};

int combiningClass(char32_t cp)
{
    if (cp < kFirstNonTrivialNfc)
        return 0;
    const auto* r = findRange(std::begin(t::kCombiningClasses), std::end(t::kCombiningClasses), cp);
    return r ? r->ccc : 0;
}

const t::Decomposition* findDecomposition(char32_t cp)
{
    const auto* end = std::end(t::kDecompositions);
    const auto* it = std::lower_bound(
        std::begin(t::kDecompositions), end, cp, [](const t::Decomposition& d, char32_t v) { return d.cp < v; });
    return (it != end && it->cp == cp) ? it : nullptr;
}

void decomposeInto(char32_t cp, std::u32string& out)
{
    if (cp >= kSBase && cp < kSBase + kSCount) {
        const char32_t s = cp - kSBase;
        out.push_back(kLBase + s / kNCount);
        out.push_back(kVBase + (s % kNCount) / kTCount);
        if (s % kTCount != 0)
            out.push_back(kTBase + s % kTCount);
        return;
    }
    const t::Decomposition* d = cp >= 0xC0 ? findDecomposition(cp) : nullptr;
    if (!d) {
        out.push_back(cp);
        return;
    }
    decomposeInto(d->first, out);
    if (d->second != 0)
        decomposeInto(d->second, out);
}

// The primary composite of (first, second), or 0.
char32_t compose(char32_t first, char32_t second)
{
    if (first >= kLBase && first < kLBase + kLCount && second >= kVBase && second < kVBase + kVCount)
        return kSBase + ((first - kLBase) * kVCount + (second - kVBase)) * kTCount;
    if (first >= kSBase && first < kSBase + kSCount && (first - kSBase) % kTCount == 0 && second > kTBase
        && second < kTBase + kTCount)
        return first + (second - kTBase);
    const auto* end = std::end(t::kCompositions);
    const auto* it = std::lower_bound(std::begin(t::kCompositions), end, std::make_pair(first, second),
        [](const t::Composition& c, const std::pair<char32_t, char32_t>& v) {
            return c.first < v.first || (c.first == v.first && c.second < v.second);
        });
    return (it != end && it->first == first && it->second == second) ? it->composite : 0;
}

// Below U+00C0 nothing decomposes; below U+0300 nothing changes under NFC.
bool allBelow(const std::u32string& text, char32_t limit)
{
    return std::all_of(text.begin(), text.end(), [limit](char32_t c) { return c < limit; });
}

// Canonical ordering: stable sort of every run of non-starters by combining class.
void reorder(std::u32string& s)
{
    size_t i = 0;
    while (i < s.size()) {
        if (combiningClass(s[i]) == 0) {
            ++i;
            continue;
        }
        size_t j = i;
        while (j < s.size() && combiningClass(s[j]) != 0)
            ++j;
        std::stable_sort(s.begin() + static_cast<std::ptrdiff_t>(i), s.begin() + static_cast<std::ptrdiff_t>(j),
            [](char32_t a, char32_t b) { return combiningClass(a) < combiningClass(b); });
        i = j;
    }
}

} // namespace

Category category(char32_t cp)
{
    static const Latin1Categories latin1;
    return cp < 256 ? latin1.cats[cp] : computeCategory(cp);
}

bool isWhiteSpace(char32_t cp)
{
    // PropList.txt's White_Space; stable since Unicode 6.3.
    if (cp <= 0x20)
        return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
    if (cp < 0x85)
        return false;
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029
        || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

bool isWordChar(char32_t cp)
{
    // Oniguruma's \w: the Unicode Word property below without Join_Control (ZWNJ, ZWJ), and in
    // Latin-1 also the superscript digits and the fractions (its ISO-8859-1 table marks them
    // alphanumeric). Checked code point by code point against Oniguruma (tst_regex_oniguruma).
    if (cp >= 0x80 && cp <= 0xFF && (cp == 0xB2 || cp == 0xB3 || cp == 0xB9 || (cp >= 0xBC && cp <= 0xBE)))
        return true;
    return cp != 0x200C && cp != 0x200D && isUnicodeWordChar(cp);
}

bool isUnicodeWordChar(char32_t cp)
{
    if (cp < 0x80)
        return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9') || cp == '_';
    if (inCategories(
            cp, kLetters | kMarks | categoryBit(Category::Nd) | categoryBit(Category::Nl) | categoryBit(Category::Pc)))
        return true;
    // The rest of Alphabetic (Other_Alphabetic symbols: circled and squared letters) and
    // Join_Control.
    return cp == 0x200C || cp == 0x200D || (cp >= 0x24B6 && cp <= 0x24E9) || (cp >= 0x1F130 && cp <= 0x1F149)
        || (cp >= 0x1F150 && cp <= 0x1F169) || (cp >= 0x1F170 && cp <= 0x1F189);
}

char32_t fold(char32_t cp)
{
    if (cp < 0x80)
        return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    const auto* end = std::end(t::kCaseFolds);
    const auto* it = std::lower_bound(
        std::begin(t::kCaseFolds), end, cp, [](const t::CaseFold& f, char32_t v) { return f.from < v; });
    return (it != end && it->from == cp) ? it->to : cp;
}

CaseVariants caseVariants(char32_t cp)
{
    // (folded, original) for every code point that folds to something else, sorted by folded.
    static const std::vector<std::pair<char32_t, char32_t>> byFolded = [] {
        std::vector<std::pair<char32_t, char32_t>> v;
        for (const auto& f : t::kCaseFolds)
            v.emplace_back(f.to, f.from);
        std::sort(v.begin(), v.end());
        return v;
    }();
    CaseVariants out;
    const char32_t folded = fold(cp);
    out.cps[out.count++] = folded;
    auto it = std::lower_bound(byFolded.begin(), byFolded.end(), std::make_pair(folded, char32_t(0)));
    for (; it != byFolded.end() && it->first == folded && out.count < static_cast<int>(out.cps.size()); ++it)
        out.cps[out.count++] = it->second;
    return out;
}

std::u32string nfd(const std::u32string& text)
{
    if (allBelow(text, 0xC0))
        return text;
    std::u32string out;
    out.reserve(text.size() + text.size() / 4);
    for (char32_t cp : text)
        decomposeInto(cp, out);
    reorder(out);
    return out;
}

std::u32string nfc(const std::u32string& text)
{
    if (allBelow(text, kFirstNonTrivialNfc))
        return text;
    const std::u32string d = nfd(text);
    std::u32string out;
    out.reserve(d.size());
    // Canonical composition: a character joins the last starter unless something between them
    // blocks it (a starter, or a mark of the same or a higher combining class).
    std::ptrdiff_t starter = -1;
    int lastClass = 0;
    for (char32_t cp : d) {
        const int cc = combiningClass(cp);
        if (starter >= 0) {
            const bool adjacent = static_cast<size_t>(starter) + 1 == out.size();
            const bool blocked = !adjacent && (lastClass == 0 || lastClass >= cc);
            if (!blocked) {
                if (const char32_t composite = compose(out[static_cast<size_t>(starter)], cp)) {
                    out[static_cast<size_t>(starter)] = composite;
                    continue;
                }
            }
        }
        if (cc == 0)
            starter = static_cast<std::ptrdiff_t>(out.size());
        lastClass = cc;
        out.push_back(cp);
    }
    return out;
}

const char* version()
{
    return t::kUnicodeVersion;
}

} // namespace cs::model::unicode
