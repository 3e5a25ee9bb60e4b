#include "text/regex.h"

#include "cs/error.h"
#include "cs/utf8.h"
#include "text/unicode.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <utility>

namespace cs::model {

namespace rx {

constexpr int kUnbounded = std::numeric_limits<int>::max();
// Oniguruma's own cap on {m,n}.
constexpr int kMaxRepeatCount = 100000;
// How deep groups (and bare flag groups, which open one) may nest: the parser descends once per
// level, so a pattern of 20,000 nested groups would run the stack out. Real patterns nest a few
// levels (Oniguruma's own limit is 4096; ours is lower, and enough).
constexpr int kMaxNesting = 1000;
// How deep the parsed tree may be (groups, repeats stacked on one atom as in a{1}{1}{1}, and the
// sequences and alternations between them): building, walking and freeing it recurse once per
// level. Groups at kMaxNesting take about three levels each.
constexpr int kMaxTreeHeight = 4 * kMaxNesting;
// Work limits for one match attempt: backtracking steps, and nested calls (the matcher
// recurses once per node it passes through, so a group repeated thousands of times is deep).
constexpr size_t kMaxSteps = 20'000'000;
constexpr int kMaxDepth = 6000;

// One member of a character class (or the only member of a literal or `.`).
struct ClassItem {
    enum class Kind { Range, Categories, WhiteSpace, Word, Digit };
    Kind kind = Kind::Range;
    bool negated = false; // \P{..}, \S, \W, \D
    char32_t lo = 0, hi = 0; // Range
    uint32_t categories = 0; // Categories: a mask of unicode::categoryBit()

    bool matches(char32_t c) const
    {
        bool r = false;
        switch (kind) {
        case Kind::Range:
            r = c >= lo && c <= hi;
            break;
        case Kind::Categories:
            r = unicode::inCategories(c, categories);
            break;
        case Kind::WhiteSpace:
            r = unicode::isWhiteSpace(c);
            break;
        case Kind::Word:
            r = unicode::isWordChar(c);
            break;
        case Kind::Digit:
            r = c < 0x80 ? (c >= '0' && c <= '9') : unicode::category(c) == unicode::Category::Nd;
            break;
        }
        return r != negated;
    }

    static ClassItem range(char32_t lo, char32_t hi)
    {
        ClassItem item;
        item.lo = lo;
        item.hi = hi;
        return item;
    }
};

// A set of code points: the union of its items, then negated if it says so. Under (?i) a code
// point is in the set when any of its case variants is.
class CharSet {
public:
    std::vector<ClassItem> items;
    bool negated = false;
    bool icase = false;

    // Must be called once the items are final: precomputes the answers for ASCII.
    void finalize()
    {
        for (char32_t c = 0; c < 128; ++c)
            if (compute(c))
                m_ascii[c >> 6] |= uint64_t(1) << (c & 63);
    }

    bool matches(char32_t c) const
    {
        if (c < 128)
            return (m_ascii[c >> 6] >> (c & 63)) & 1;
        return compute(c);
    }

private:
    std::array<uint64_t, 2> m_ascii {};

    bool contains(char32_t c) const
    {
        for (const auto& item : items)
            if (item.matches(c))
                return true;
        return false;
    }

    bool compute(char32_t c) const
    {
        bool in = contains(c);
        if (!in && icase) {
            const auto variants = unicode::caseVariants(c);
            for (int i = 0; i < variants.count && !in; ++i)
                in = contains(variants.cps[static_cast<size_t>(i)]);
        }
        return in != negated;
    }
};

enum class NodeKind { Set, Seq, Alt, Repeat, Look, Atomic, Assert };
enum class Anchor { LineStart, LineEnd, TextStart, TextEnd, TextEndBeforeNewline, WordBoundary, NotWordBoundary };
enum class RepeatMode { Greedy, Lazy, Possessive };

} // namespace rx

struct Regex::Node {
    rx::NodeKind kind = rx::NodeKind::Seq;
    rx::CharSet set; // Set: matches one code point
    std::vector<std::unique_ptr<Node>> children; // Seq, Alt; Repeat, Look and Atomic have one
    int height = 0; // the most levels below this node (0 for a leaf), at most kMaxTreeHeight
    int min = 0, max = rx::kUnbounded; // Repeat
    rx::RepeatMode mode = rx::RepeatMode::Greedy; // Repeat
    bool negated = false; // Look: (?!...)
    rx::Anchor anchor = rx::Anchor::LineStart; // Assert
};

namespace rx {

using Node = Regex::Node;
using NodePtr = std::unique_ptr<Node>;

NodePtr makeNode(NodeKind kind)
{
    auto n = std::make_unique<Node>();
    n->kind = kind;
    return n;
}

NodePtr makeSet(CharSet set)
{
    auto n = makeNode(NodeKind::Set);
    n->set = std::move(set);
    n->set.finalize();
    return n;
}

NodePtr makeLiteral(char32_t c, bool icase)
{
    CharSet set;
    set.items.push_back(ClassItem::range(c, c));
    set.icase = icase;
    return makeSet(std::move(set));
}

// Collapses a one-child Seq or Alt into the child.
NodePtr simplify(NodePtr n)
{
    if ((n->kind == NodeKind::Seq || n->kind == NodeKind::Alt) && n->children.size() == 1)
        return std::move(n->children.front());
    return n;
}

struct PropertyName {
    const char* name; // lower case, without spaces, '_' or '-'
    uint32_t mask;
};

using unicode::Category;
using unicode::categoryBit;

constexpr uint32_t kAllCategories = (uint32_t(1) << unicode::kCategoryCount) - 1;

const PropertyName kPropertyNames[] = {
    { "l", unicode::kLetters },
    { "letter", unicode::kLetters },
    { "lu", categoryBit(Category::Lu) },
    { "uppercaseletter", categoryBit(Category::Lu) },
    { "ll", categoryBit(Category::Ll) },
    { "lowercaseletter", categoryBit(Category::Ll) },
    { "lt", categoryBit(Category::Lt) },
    { "titlecaseletter", categoryBit(Category::Lt) },
    { "lm", categoryBit(Category::Lm) },
    { "modifierletter", categoryBit(Category::Lm) },
    { "lo", categoryBit(Category::Lo) },
    { "otherletter", categoryBit(Category::Lo) },
    { "lc", categoryBit(Category::Lu) | categoryBit(Category::Ll) | categoryBit(Category::Lt) },
    { "l&", categoryBit(Category::Lu) | categoryBit(Category::Ll) | categoryBit(Category::Lt) },
    { "casedletter", categoryBit(Category::Lu) | categoryBit(Category::Ll) | categoryBit(Category::Lt) },
    { "m", unicode::kMarks },
    { "mark", unicode::kMarks },
    { "combiningmark", unicode::kMarks },
    { "mn", categoryBit(Category::Mn) },
    { "nonspacingmark", categoryBit(Category::Mn) },
    { "mc", categoryBit(Category::Mc) },
    { "spacingmark", categoryBit(Category::Mc) },
    { "me", categoryBit(Category::Me) },
    { "enclosingmark", categoryBit(Category::Me) },
    { "n", unicode::kNumbers },
    { "number", unicode::kNumbers },
    { "nd", categoryBit(Category::Nd) },
    { "decimalnumber", categoryBit(Category::Nd) },
    { "nl", categoryBit(Category::Nl) },
    { "letternumber", categoryBit(Category::Nl) },
    { "no", categoryBit(Category::No) },
    { "othernumber", categoryBit(Category::No) },
    { "p", unicode::kPunctuation },
    { "punctuation", unicode::kPunctuation },
    { "pc", categoryBit(Category::Pc) },
    { "connectorpunctuation", categoryBit(Category::Pc) },
    { "pd", categoryBit(Category::Pd) },
    { "dashpunctuation", categoryBit(Category::Pd) },
    { "ps", categoryBit(Category::Ps) },
    { "openpunctuation", categoryBit(Category::Ps) },
    { "pe", categoryBit(Category::Pe) },
    { "closepunctuation", categoryBit(Category::Pe) },
    { "pi", categoryBit(Category::Pi) },
    { "initialpunctuation", categoryBit(Category::Pi) },
    { "pf", categoryBit(Category::Pf) },
    { "finalpunctuation", categoryBit(Category::Pf) },
    { "po", categoryBit(Category::Po) },
    { "otherpunctuation", categoryBit(Category::Po) },
    { "s", unicode::kSymbols },
    { "symbol", unicode::kSymbols },
    { "sm", categoryBit(Category::Sm) },
    { "mathsymbol", categoryBit(Category::Sm) },
    { "sc", categoryBit(Category::Sc) },
    { "currencysymbol", categoryBit(Category::Sc) },
    { "sk", categoryBit(Category::Sk) },
    { "modifiersymbol", categoryBit(Category::Sk) },
    { "so", categoryBit(Category::So) },
    { "othersymbol", categoryBit(Category::So) },
    { "z", unicode::kSeparators },
    { "separator", unicode::kSeparators },
    { "zs", categoryBit(Category::Zs) },
    { "spaceseparator", categoryBit(Category::Zs) },
    { "zl", categoryBit(Category::Zl) },
    { "lineseparator", categoryBit(Category::Zl) },
    { "zp", categoryBit(Category::Zp) },
    { "paragraphseparator", categoryBit(Category::Zp) },
    { "c", unicode::kOthers },
    { "other", unicode::kOthers },
    { "cc", categoryBit(Category::Cc) },
    { "control", categoryBit(Category::Cc) },
    { "cf", categoryBit(Category::Cf) },
    { "format", categoryBit(Category::Cf) },
    { "cs", categoryBit(Category::Cs) },
    { "surrogate", categoryBit(Category::Cs) },
    { "co", categoryBit(Category::Co) },
    { "privateuse", categoryBit(Category::Co) },
    { "cn", categoryBit(Category::Cn) },
    { "unassigned", categoryBit(Category::Cn) },
    { "any", kAllCategories },
};

// What a backslash escape stands for.
struct Escape {
    enum class Type { Char, Item, Anchor } type = Type::Char;
    char32_t ch = 0;
    ClassItem item;
    rx::Anchor anchor = rx::Anchor::WordBoundary;
};

class Parser {
public:
    Parser(std::string_view source)
        : m_src(source)
        , m_p(utf8::decode(source))
    {
        if (!utf8::isValid(source))
            fail("the pattern is not valid UTF-8");
    }

    NodePtr parse()
    {
        NodePtr root = parseAlternation(false);
        if (!atEnd())
            fail("unmatched ')'");
        return root;
    }

private:
    std::string_view m_src;
    std::u32string m_p;
    size_t m_i = 0;
    bool m_bareFlags = false; // the atom just read was a bare flag group, (?i)
    int m_nesting = 0; // parseAlternation calls open now

    [[noreturn]] void fail(const std::string& what) const
    {
        throw Error("bad regular expression /" + std::string(m_src) + "/: " + what + " (at character "
            + std::to_string(m_i) + ")");
    }

    bool atEnd() const { return m_i >= m_p.size(); }
    char32_t peek(size_t k = 0) const { return m_i + k < m_p.size() ? m_p[m_i + k] : char32_t(0); }
    bool has(size_t k = 0) const { return m_i + k < m_p.size(); }
    char32_t next()
    {
        if (atEnd())
            fail("unexpected end of pattern");
        return m_p[m_i++];
    }
    bool accept(char32_t c)
    {
        if (has() && m_p[m_i] == c) {
            ++m_i;
            return true;
        }
        return false;
    }
    void expect(char32_t c, const char* what)
    {
        if (!accept(c))
            fail(std::string("missing ") + what);
    }

    // Makes `child` the last of parent's children, refusing a tree deeper than kMaxTreeHeight
    // before it is built (the matcher and the destructor recurse once per level).
    void adopt(Node& parent, NodePtr child)
    {
        parent.height = std::max(parent.height, child->height + 1);
        if (parent.height > kMaxTreeHeight)
            fail("the pattern nests deeper than " + std::to_string(kMaxTreeHeight)
                + " levels (groups, and quantifiers stacked on one atom)");
        parent.children.push_back(std::move(child));
    }

    // alternation := sequence ('|' sequence)*; an inline (?i) lasts to the end of the group.
    NodePtr parseAlternation(bool icase)
    {
        if (++m_nesting > kMaxNesting)
            fail("groups nested deeper than " + std::to_string(kMaxNesting) + " levels");
        auto alt = makeNode(NodeKind::Alt);
        do {
            adopt(*alt, parseSequence(icase));
        } while (accept('|'));
        --m_nesting;
        return simplify(std::move(alt));
    }

    NodePtr parseSequence(bool& icase)
    {
        auto seq = makeNode(NodeKind::Seq);
        while (has() && peek() != '|' && peek() != ')') {
            NodePtr atom = parseAtom(icase);
            if (!atom && m_bareFlags) {
                // (?i) without ':' takes the rest of the enclosing group with it, alternatives
                // included, as Oniguruma reads it: a(?i)b|c is a(?i:b|c).
                m_bareFlags = false;
                adopt(*seq, parseAlternation(icase));
                break;
            }
            if (!atom)
                continue; // a comment
            int min = 0, max = 0;
            RepeatMode mode = RepeatMode::Greedy;
            while (parseQuantifier(min, max, mode)) {
                if (atom->kind == NodeKind::Assert)
                    fail("an anchor cannot be repeated");
                auto rep = makeNode(NodeKind::Repeat);
                rep->min = min;
                rep->max = max;
                rep->mode = mode;
                adopt(*rep, std::move(atom));
                atom = std::move(rep);
            }
            adopt(*seq, std::move(atom));
        }
        return simplify(std::move(seq));
    }

    // Reads {m}, {m,}, {m,n} or {,n} at the current position without consuming anything
    // when it is not one (then `{` is a literal, as in Oniguruma).
    bool readBraces(int& min, int& max, bool& fixed)
    {
        size_t j = m_i;
        if (j >= m_p.size() || m_p[j] != '{')
            return false;
        ++j;
        const auto readNumber = [&](int& out) {
            size_t start = j;
            long long v = 0;
            while (j < m_p.size() && m_p[j] >= '0' && m_p[j] <= '9') {
                v = v * 10 + (m_p[j] - '0');
                if (v > kMaxRepeatCount)
                    fail("repeat count too large (the limit is 100000)");
                ++j;
            }
            out = static_cast<int>(v);
            return j > start;
        };
        int lo = 0, hi = 0;
        const bool hasLo = readNumber(lo);
        if (j < m_p.size() && m_p[j] == ',') {
            ++j;
            const bool hasHi = readNumber(hi);
            if (!hasLo && !hasHi)
                return false;
            if (!hasHi)
                hi = kUnbounded;
            if (!hasLo)
                lo = 0;
        } else {
            if (!hasLo)
                return false;
            hi = lo;
            fixed = true; // {n}
        }
        if (j >= m_p.size() || m_p[j] != '}')
            return false;
        if (hi < lo)
            fail("repeat range {m,n} with n < m");
        m_i = j + 1;
        min = lo;
        max = hi;
        return true;
    }

    bool parseQuantifier(int& min, int& max, RepeatMode& mode)
    {
        if (!has())
            return false;
        const char32_t c = peek();
        bool braces = false, fixed = false;
        if (c == '*') {
            ++m_i;
            min = 0;
            max = kUnbounded;
        } else if (c == '+') {
            ++m_i;
            min = 1;
            max = kUnbounded;
        } else if (c == '?') {
            ++m_i;
            min = 0;
            max = 1;
        } else if (readBraces(min, max, fixed)) {
            braces = true;
        } else {
            return false;
        }
        // As ONIG_SYNTAX_ONIGURUMA reads them: after an interval, + is another repeat (never
        // possessive), and after {n}, ? makes it optional ((?:x{n})?), not lazy; {n,m}? is lazy.
        mode = RepeatMode::Greedy;
        if (!fixed && accept('?'))
            mode = RepeatMode::Lazy;
        else if (!braces && accept('+'))
            mode = RepeatMode::Possessive;
        return true;
    }

    NodePtr parseAtom(bool& icase)
    {
        const char32_t c = next();
        switch (c) {
        case '(':
            return parseGroup(icase);
        case '[':
            return parseClass(icase);
        case '.': {
            CharSet set;
            set.items.push_back(ClassItem::range('\n', '\n'));
            set.negated = true;
            return makeSet(std::move(set));
        }
        case '^':
            return makeAnchor(Anchor::LineStart);
        case '$':
            return makeAnchor(Anchor::LineEnd);
        case '*':
        case '+':
        case '?':
            fail("nothing to repeat");
        case '{': {
            --m_i;
            int min = 0, max = 0;
            bool fixed = false;
            if (readBraces(min, max, fixed))
                fail("nothing to repeat");
            ++m_i;
            return makeLiteral('{', icase);
        }
        case '\\': {
            const Escape e = parseEscape(false);
            if (e.type == Escape::Type::Anchor)
                return makeAnchor(e.anchor);
            if (e.type == Escape::Type::Item) {
                // Outside brackets a \p{..}, \d, \s or \w is never case-folded, even under (?i):
                // (?i)\p{Lu} matches upper case only, as in Oniguruma ((?i)[\p{Lu}] matches both).
                CharSet set;
                set.items.push_back(e.item);
                return makeSet(std::move(set));
            }
            return makeLiteral(e.ch, icase);
        }
        default:
            return makeLiteral(c, icase);
        }
    }

    static NodePtr makeAnchor(Anchor a)
    {
        auto n = makeNode(NodeKind::Assert);
        n->anchor = a;
        return n;
    }

    NodePtr wrap(NodeKind kind, NodePtr body, bool negated = false)
    {
        auto n = makeNode(kind);
        n->negated = negated;
        adopt(*n, std::move(body));
        return n;
    }

    NodePtr groupBody(bool icase)
    {
        NodePtr body = parseAlternation(icase);
        expect(')', "')'");
        return body;
    }

    void skipName(char32_t terminator)
    {
        const size_t start = m_i;
        while (has() && peek() != terminator)
            ++m_i;
        if (!has() || m_i == start)
            fail("bad group name");
        ++m_i;
    }

    // After '('.
    NodePtr parseGroup(bool& icase)
    {
        if (!accept('?'))
            return groupBody(icase); // capturing group: we only report whole matches
        const char32_t c = next();
        switch (c) {
        case ':':
            return groupBody(icase);
        case '=':
            return wrap(NodeKind::Look, groupBody(icase), false);
        case '!':
            return wrap(NodeKind::Look, groupBody(icase), true);
        case '>':
            return wrap(NodeKind::Atomic, groupBody(icase));
        case '#':
            while (has() && peek() != ')')
                ++m_i;
            expect(')', "')' after the comment");
            return nullptr;
        case '<':
            if (peek() == '=' || peek() == '!')
                fail("lookbehind (?<= ) / (?<! ) is not supported");
            skipName('>');
            return groupBody(icase);
        case '\'':
            skipName('\'');
            return groupBody(icase);
        case 'P':
            if (accept('<')) {
                skipName('>');
                return groupBody(icase);
            }
            fail("unsupported (?P group (only (?P<name>...) is)");
        default:
            break;
        }
        // Flags: (?i) (?-i) (?i:...) (?-i:...)
        --m_i;
        bool on = true;
        bool newIcase = icase;
        while (true) {
            const char32_t f = next();
            if (f == '-') {
                on = false;
            } else if (f == 'i') {
                newIcase = on;
            } else if (f == ')') {
                icase = newIcase; // applies to the rest of the enclosing group
                m_bareFlags = true;
                return nullptr;
            } else if (f == ':') {
                return groupBody(newIcase);
            } else {
                fail(std::string("unsupported group or flag '(?") + static_cast<char>(f < 128 ? f : '?')
                    + "' (only the i flag is supported)");
            }
        }
    }

    static int hexValue(char32_t c)
    {
        if (c >= '0' && c <= '9')
            return static_cast<int>(c - '0');
        if (c >= 'a' && c <= 'f')
            return static_cast<int>(c - 'a' + 10);
        if (c >= 'A' && c <= 'F')
            return static_cast<int>(c - 'A' + 10);
        return -1;
    }

    char32_t readHex(size_t minDigits, size_t maxDigits)
    {
        char32_t v = 0;
        size_t n = 0;
        while (n < maxDigits && has() && hexValue(peek()) >= 0) {
            v = v * 16 + static_cast<char32_t>(hexValue(next()));
            ++n;
        }
        if (n < minDigits)
            fail("bad hexadecimal escape");
        if (v > 0x10FFFF)
            fail("code point out of range");
        return v;
    }

    ClassItem parseProperty(bool negated)
    {
        std::string name;
        if (accept('{')) {
            if (accept('^'))
                negated = !negated;
            while (has() && peek() != '}') {
                const char32_t c = next();
                if (c == ' ' || c == '_' || c == '-')
                    continue;
                if (c >= 128)
                    fail("bad property name");
                name.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c));
            }
            expect('}', "'}' after the property name");
        } else {
            const char32_t c = next();
            if (c >= 128)
                fail("bad property name");
            name.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c));
        }
        ClassItem item;
        item.negated = negated;
        if (name == "space" || name == "whitespace") {
            item.kind = ClassItem::Kind::WhiteSpace;
            return item;
        }
        for (const auto& p : kPropertyNames) {
            if (name == p.name) {
                item.kind = ClassItem::Kind::Categories;
                item.categories = p.mask;
                return item;
            }
        }
        fail("unsupported Unicode property \\p{" + name + "} (general categories only)");
    }

    // After '\'.
    Escape parseEscape(bool inClass)
    {
        Escape e;
        const auto item = [&](ClassItem::Kind kind, bool negated) {
            e.type = Escape::Type::Item;
            e.item.kind = kind;
            e.item.negated = negated;
            return e;
        };
        const auto anchor = [&](Anchor a) {
            if (inClass)
                fail("an anchor escape inside a character class");
            e.type = Escape::Type::Anchor;
            e.anchor = a;
            return e;
        };
        const char32_t c = next();
        switch (c) {
        case 't':
            e.ch = '\t';
            return e;
        case 'n':
            e.ch = '\n';
            return e;
        case 'r':
            e.ch = '\r';
            return e;
        case 'f':
            e.ch = '\f';
            return e;
        case 'v':
            e.ch = '\v';
            return e;
        case 'a':
            e.ch = 0x07;
            return e;
        case 'e':
            e.ch = 0x1B;
            return e;
        case '0': {
            char32_t v = 0;
            for (int k = 0; k < 2 && has() && peek() >= '0' && peek() <= '7'; ++k)
                v = v * 8 + (next() - '0');
            e.ch = v;
            return e;
        }
        case 'x':
            if (accept('{')) {
                e.ch = readHex(1, 8);
                expect('}', "'}' after \\x{");
            } else {
                e.ch = readHex(1, 2);
            }
            return e;
        case 'u':
            e.ch = readHex(4, 4);
            return e;
        case 'd':
            return item(ClassItem::Kind::Digit, false);
        case 'D':
            return item(ClassItem::Kind::Digit, true);
        case 's':
            return item(ClassItem::Kind::WhiteSpace, false);
        case 'S':
            return item(ClassItem::Kind::WhiteSpace, true);
        case 'w':
            return item(ClassItem::Kind::Word, false);
        case 'W':
            return item(ClassItem::Kind::Word, true);
        case 'p':
        case 'P':
            e.type = Escape::Type::Item;
            e.item = parseProperty(c == 'P');
            return e;
        case 'b':
            if (inClass) {
                e.ch = 0x08;
                return e;
            }
            return anchor(Anchor::WordBoundary);
        case 'B':
            return anchor(Anchor::NotWordBoundary);
        case 'A':
            return anchor(Anchor::TextStart);
        case 'z':
            return anchor(Anchor::TextEnd);
        case 'Z':
            return anchor(Anchor::TextEndBeforeNewline);
        default:
            break;
        }
        if (c >= '1' && c <= '9')
            fail("backreferences are not supported");
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
            fail(std::string("unsupported escape \\") + static_cast<char>(c));
        e.ch = c; // escaped punctuation or any other character stands for itself
        return e;
    }

    // After '['.
    NodePtr parseClass(bool icase)
    {
        CharSet set;
        set.icase = icase;
        set.negated = accept('^');
        bool first = true;
        while (true) {
            if (atEnd())
                fail("unterminated character class");
            char32_t c = next();
            if (c == ']' && !first)
                break;
            first = false;
            if (c == '[')
                fail("nested character classes are not supported");
            if (c == '&' && peek() == '&')
                fail("character class intersection (&&) is not supported");
            char32_t lo = c;
            if (c == '\\') {
                const Escape e = parseEscape(true);
                if (e.type == Escape::Type::Item) {
                    set.items.push_back(e.item);
                    continue;
                }
                lo = e.ch;
            }
            if (peek() == '-' && has(1) && peek(1) != ']') {
                ++m_i; // '-'
                char32_t hi = next();
                if (hi == '[')
                    fail("nested character classes are not supported");
                if (hi == '\\') {
                    const Escape e = parseEscape(true);
                    if (e.type != Escape::Type::Char)
                        fail("a class escape cannot end a range");
                    hi = e.ch;
                }
                if (hi < lo)
                    fail("empty range in character class");
                set.items.push_back(ClassItem::range(lo, hi));
            } else {
                set.items.push_back(ClassItem::range(lo, lo));
            }
        }
        return makeSet(std::move(set));
    }
};

// Backtracking by continuations: match(node, pos, k) matches node at pos and then calls the
// continuation k, which matches the rest of the pattern; returning false backtracks. So the
// first success found is the leftmost-first (Perl/Oniguruma) match.
class Matcher {
public:
    explicit Matcher(std::u32string_view text)
        : m_t(text)
    {
    }

    std::optional<size_t> run(const Node* root, size_t pos)
    {
        m_steps = 0;
        size_t end = 0;
        if (matchAlone(root, pos, end))
            return end;
        return std::nullopt;
    }

private:
    struct Cont {
        enum class Kind { Accept, Seq, Repeat } kind = Kind::Accept;
        const Node* node = nullptr;
        size_t index = 0; // Seq: next child; Repeat: iterations done including this one
        size_t start = 0; // Repeat: where this iteration began
        RepeatMode mode = RepeatMode::Greedy; // Repeat
        size_t* out = nullptr; // Accept: receives the end position
        const Cont* next = nullptr;
    };

    struct DepthGuard {
        int& depth;
        explicit DepthGuard(int& d)
            : depth(d)
        {
            if (++depth > kMaxDepth)
                throw Error("a pre-tokenizer regex nests too deeply on this text (more than "
                    + std::to_string(kMaxDepth) + " levels)");
        }
        ~DepthGuard() { --depth; }
    };

    std::u32string_view m_t;
    size_t m_steps = 0;
    int m_depth = 0;

    void step()
    {
        if (++m_steps > kMaxSteps)
            throw Error("a pre-tokenizer regex needs too much backtracking on this text");
    }

    bool matchAlone(const Node* n, size_t pos, size_t& end)
    {
        Cont accept;
        accept.out = &end;
        return match(n, pos, &accept);
    }

    bool resume(const Cont* k, size_t pos)
    {
        step();
        switch (k->kind) {
        case Cont::Kind::Accept:
            *k->out = pos;
            return true;
        case Cont::Kind::Seq:
            return matchSeq(k->node, k->index, pos, k->next);
        case Cont::Kind::Repeat:
            // An empty iteration beyond the minimum would repeat forever: stop here instead.
            if (pos == k->start && static_cast<int>(k->index) > k->node->min)
                return false;
            return repeatStep(k->node, k->index, pos, k->next, k->mode);
        }
        return false;
    }

    bool matchSeq(const Node* seq, size_t index, size_t pos, const Cont* k)
    {
        const auto& ch = seq->children;
        // Single code points need no backtracking state: run through them in a loop.
        while (index < ch.size() && ch[index]->kind == NodeKind::Set) {
            if (pos >= m_t.size() || !ch[index]->set.matches(m_t[pos]))
                return false;
            ++pos;
            ++index;
        }
        if (index == ch.size())
            return resume(k, pos);
        if (index + 1 == ch.size())
            return match(ch[index].get(), pos, k);
        Cont c;
        c.kind = Cont::Kind::Seq;
        c.node = seq;
        c.index = index + 1;
        c.next = k;
        return match(ch[index].get(), pos, &c);
    }

    bool repeatStep(const Node* n, size_t count, size_t pos, const Cont* k, RepeatMode mode)
    {
        const int done = static_cast<int>(count);
        Cont c;
        c.kind = Cont::Kind::Repeat;
        c.node = n;
        c.index = count + 1;
        c.start = pos;
        c.mode = mode;
        c.next = k;
        if (mode == RepeatMode::Lazy) {
            if (done >= n->min && resume(k, pos))
                return true;
            return done < n->max && match(n->children.front().get(), pos, &c);
        }
        if (done < n->max && match(n->children.front().get(), pos, &c))
            return true;
        return done >= n->min && resume(k, pos);
    }

    bool matchRepeat(const Node* n, size_t pos, const Cont* k)
    {
        const Node* child = n->children.front().get();
        if (child->kind == NodeKind::Set) {
            // One code point per iteration: count how many fit, then try the counts in order.
            size_t avail = 0;
            const size_t limit = static_cast<size_t>(n->max);
            while (avail < limit && pos + avail < m_t.size() && child->set.matches(m_t[pos + avail]))
                ++avail;
            const size_t min = static_cast<size_t>(n->min);
            if (avail < min)
                return false;
            switch (n->mode) {
            case RepeatMode::Greedy:
                for (size_t c = avail;; --c) {
                    if (resume(k, pos + c))
                        return true;
                    if (c == min)
                        return false;
                }
            case RepeatMode::Lazy:
                for (size_t c = min; c <= avail; ++c)
                    if (resume(k, pos + c))
                        return true;
                return false;
            case RepeatMode::Possessive:
                return resume(k, pos + avail);
            }
            return false;
        }
        if (n->mode == RepeatMode::Possessive) {
            // The greedy repeat's first way to match on its own, never revisited.
            size_t end = 0;
            Cont accept;
            accept.out = &end;
            if (!repeatStep(n, 0, pos, &accept, RepeatMode::Greedy))
                return false;
            return resume(k, end);
        }
        return repeatStep(n, 0, pos, k, n->mode);
    }

    bool wordAt(size_t pos) const { return pos < m_t.size() && unicode::isWordChar(m_t[pos]); }

    bool anchorHolds(Anchor a, size_t pos) const
    {
        const size_t len = m_t.size();
        switch (a) {
        case Anchor::LineStart: // not at the end of the text, even after a newline (Oniguruma)
            return pos == 0 || (pos < len && m_t[pos - 1] == '\n');
        case Anchor::LineEnd:
            return pos == len || m_t[pos] == '\n';
        case Anchor::TextStart:
            return pos == 0;
        case Anchor::TextEnd:
            return pos == len;
        case Anchor::TextEndBeforeNewline:
            return pos == len || (pos + 1 == len && m_t[pos] == '\n');
        case Anchor::WordBoundary:
            return (pos > 0 && wordAt(pos - 1)) != wordAt(pos);
        case Anchor::NotWordBoundary:
            return (pos > 0 && wordAt(pos - 1)) == wordAt(pos);
        }
        return false;
    }

    bool match(const Node* n, size_t pos, const Cont* k)
    {
        step();
        DepthGuard guard(m_depth);
        switch (n->kind) {
        case NodeKind::Set:
            return pos < m_t.size() && n->set.matches(m_t[pos]) && resume(k, pos + 1);
        case NodeKind::Seq:
            return matchSeq(n, 0, pos, k);
        case NodeKind::Alt:
            for (const auto& child : n->children)
                if (match(child.get(), pos, k))
                    return true;
            return false;
        case NodeKind::Repeat:
            return matchRepeat(n, pos, k);
        case NodeKind::Look: {
            size_t end = 0;
            const bool found = matchAlone(n->children.front().get(), pos, end);
            return found != n->negated && resume(k, pos);
        }
        case NodeKind::Atomic: {
            size_t end = 0;
            return matchAlone(n->children.front().get(), pos, end) && resume(k, end);
        }
        case NodeKind::Assert:
            return anchorHolds(n->anchor, pos) && resume(k, pos);
        }
        return false;
    }
};

} // namespace rx

Regex::Regex(std::string_view pattern)
    : m_pattern(pattern)
{
    m_root = rx::Parser(pattern).parse();
}

std::optional<size_t> Regex::matchAt(std::u32string_view text, size_t pos) const
{
    if (pos > text.size())
        return std::nullopt;
    return rx::Matcher(text).run(m_root.get(), pos);
}

std::optional<Regex::Match> Regex::search(std::u32string_view text, size_t from) const
{
    rx::Matcher matcher(text);
    for (size_t s = from; s <= text.size(); ++s)
        if (const auto end = matcher.run(m_root.get(), s))
            return Match { s, *end };
    return std::nullopt;
}

std::vector<Regex::Match> Regex::findAll(std::u32string_view text) const
{
    std::vector<Match> out;
    rx::Matcher matcher(text);
    size_t pos = 0;
    bool haveLast = false;
    size_t lastEnd = 0;
    while (pos <= text.size()) {
        bool found = false;
        for (size_t s = pos; s <= text.size(); ++s) {
            const auto end = matcher.run(m_root.get(), s);
            if (!end)
                continue;
            if (*end == s && haveLast && lastEnd == s)
                continue; // an empty match glued to the previous match
            out.push_back({ s, *end });
            haveLast = true;
            lastEnd = *end;
            pos = *end > s ? *end : s + 1;
            found = true;
            break;
        }
        if (!found)
            break;
    }
    return out;
}

} // namespace cs::model
