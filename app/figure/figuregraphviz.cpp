// DOT text, dot layout and rendering. Every Graphviz call runs under one process-wide mutex
// (Graphviz keeps global state: its error hook, its memory discipline, the context's plugins).

#include "figure.h"

#include <cs/error.h>

#include <gvc.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

namespace cs::app {

namespace {

// The margin Graphviz adds around the drawing on export ("pad", inches): 0.25 in = 18 pt.
constexpr double kPadInches = 0.08; // tight: a figure goes into a paper

struct Palette {
    const char* background;
    const char* text;
    const char* border;
    const char* positive; // edges with a positive weight (excitatory)
    const char* negative; // inhibitory
    const char* intervened; // border of intervened nodes
};

Palette palette(FigureTheme theme)
{
    if (theme == FigureTheme::Dark)
        return { "#1e1f22", "#e8e8e8", "#9a9a9a", "#5b9bf0", "#f06b5b", "#ffa94d" };
    return { "#ffffff", "#1a1a1a", "#5f6368", "#2f6db5", "#c8372d", "#d9480f" };
}

// A DOT double-quoted string: '"' and '\' escaped, so Graphviz reads back the same characters
// (a backslash is also doubled for the escapes Graphviz expands in labels and ids: \N, \G, ...).
std::string quoted(const std::string& text)
{
    std::string out = "\"";
    for (char c : text) {
        if (c == '"' || c == '\\')
            out += '\\';
        if (c == '\n' || c == '\r')
            out += ' '; // not a label: no line breaks
        else
            out += c;
    }
    return out + "\"";
}

// A label as a quoted DOT string: each line made visible and valid UTF-8 (no controls, no stray
// bytes, which Graphviz would refuse or misread as Latin-1), '&' written as "&amp;" (Graphviz
// decodes HTML entities in plain labels, so "&lt;" would otherwise show as '<'), lines joined
// with Graphviz's "\n" (a centred line break).
std::string labelString(const std::string& text)
{
    std::string out = "\"";
    size_t start = 0;
    while (true) {
        const size_t end = text.find('\n', start);
        const std::string line = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
        const std::string visible = visibleText(line);
        for (char c : visible) {
            if (c == '"' || c == '\\')
                out += '\\';
            if (c == '&')
                out += "&amp;";
            else
                out += c;
        }
        if (end == std::string::npos)
            break;
        out += "\\n";
        start = end + 1;
    }
    return out + "\"";
}

// Text for a Graphviz HTML label: made visible and valid UTF-8 (as labelString), '&', '<',
// '>' and '"' as entities, lines joined with <BR/>.
std::string htmlText(const std::string& text)
{
    std::string out;
    size_t start = 0;
    while (true) {
        const size_t end = text.find('\n', start);
        const std::string line = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
        for (char c : visibleText(line)) {
            switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            default:
                out += c;
            }
        }
        if (end == std::string::npos)
            break;
        out += "<BR/>";
        start = end + 1;
    }
    return out;
}

std::string number(double value)
{
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.4g", value);
    return buffer;
}

// The DOT text; dpi > 0 sets the output resolution (PNG).
std::string dotText(const FigureSpec& spec, double dpi)
{
    const Palette colors = palette(spec.theme);
    std::ostringstream out;
    out << "digraph figure {\n";
    // mclimit: the order within a rank is fixed by the prompt (the position chains below), so
    // crossing minimisation has little to choose; its full run of transpositions broke a chain
    // on the Dallas graph (a position-12 node drawn left of position 11), a hundredth of it
    // keeps every chain (tst_gui_researcher checks the order on the shipped graphs).
    out << "  graph [rankdir=BT, charset=\"UTF-8\", bgcolor=" << quoted(colors.background)
        << ", fontname=\"DejaVu Sans\", fontsize=12, fontcolor=" << quoted(colors.text)
        << ", labelloc=t, labeljust=c, pad=" << number(kPadInches)
        << ", nodesep=0.25, ranksep=0.45, mclimit=0.01, outputorder=edgesfirst, splines=true";
    if (dpi > 0)
        out << ", dpi=" << number(dpi);
    std::string heading = spec.title;
    if (!spec.caption.empty())
        heading += (heading.empty() ? "" : "\n") + spec.caption;
    for (const std::string& note : spec.notes)
        heading += (heading.empty() ? "" : "\n") + note;
    if (spec.legend) {
        // The heading and, under it, a key: node kinds as the figure fills them, edge colours.
        const auto swatch = [&](FigureNodeKind kind, const char* name, const char* style) {
            return std::string("<TD BGCOLOR=\"") + defaultFillColor(kind, spec.theme) + "\" BORDER=\"1\" STYLE=\""
                + style + "\" CELLPADDING=\"2\"><FONT POINT-SIZE=\"9\">" + name + "</FONT></TD>";
        };
        std::string key = "<TABLE BORDER=\"0\" CELLSPACING=\"4\" CELLPADDING=\"0\"><TR>";
        key += swatch(FigureNodeKind::Embedding, "token", "");
        key += swatch(FigureNodeKind::Feature, "feature", "ROUNDED");
        key += swatch(FigureNodeKind::Error, "error", "DASHED");
        key += swatch(FigureNodeKind::Supernode, "supernode", "ROUNDED");
        key += swatch(FigureNodeKind::Logit, "output", "");
        key += std::string("<TD><FONT POINT-SIZE=\"9\" COLOR=\"") + colors.positive
            + "\">\u2501\u2501 excites</FONT></TD><TD><FONT POINT-SIZE=\"9\" COLOR=\"" + colors.negative
            + "\">\u2501\u2501 inhibits</FONT></TD><TD><FONT POINT-SIZE=\"9\"><I>italics: automatic "
              "description</I></FONT></TD></TR></TABLE>";
        out << ", label=<<TABLE BORDER=\"0\" CELLSPACING=\"0\"><TR><TD>" << htmlText(heading) << "</TD></TR><TR><TD>"
            << key << "</TD></TR></TABLE>>";
    } else if (!heading.empty()) {
        out << ", label=" << labelString(heading);
    }
    out << "];\n";
    out << "  node [shape=box, style=\"rounded,filled\", fontname=\"DejaVu Sans\", fontsize=10, margin=\"0.08,0.04\""
        << ", fontcolor=" << quoted(colors.text) << ", color=" << quoted(colors.border) << ", penwidth=1];\n";
    out << "  edge [arrowsize=0.6];\n";

    // Ranks: one per distinct layer, in layer order, each anchored by an invisible node; the
    // anchors form an invisible chain, so layer order holds even between layers no edge joins.
    std::vector<double> layers;
    for (const FigureNode& node : spec.nodes)
        layers.push_back(node.layer);
    std::sort(layers.begin(), layers.end());
    layers.erase(std::unique(layers.begin(), layers.end(), [](double a, double b) { return std::fabs(a - b) < 1e-9; }),
        layers.end());
    const auto rankOf = [&](double layer) {
        const auto it = std::lower_bound(layers.begin(), layers.end(), layer - 1e-9);
        return static_cast<size_t>(it - layers.begin());
    };

    // Nodes, within a rank by position, so dot's first ordering follows the prompt.
    std::vector<size_t> order(spec.nodes.size());
    for (size_t i = 0; i < order.size(); ++i)
        order[i] = i;
    std::stable_sort(order.begin(), order.end(),
        [&](size_t a, size_t b) { return spec.nodes[a].position < spec.nodes[b].position; });
    for (size_t i : order) {
        const FigureNode& node = spec.nodes[i];
        std::string label = node.label;
        if (!node.annotation.empty())
            label += "\n" + node.annotation;
        out << "  n" << i << " [id=" << quoted(node.id) << ", label=";
        if (node.autoLabel.empty())
            out << labelString(label);
        else // the automatic description apart: grey italics under the name
            out << "<" << htmlText(label) << "<BR/><FONT COLOR=\"" << colors.border << "\"><I>"
                << htmlText(node.autoLabel) << "</I></FONT>>";
        out << ", fillcolor="
            << quoted(node.fillColor.empty() ? defaultFillColor(node.kind, spec.theme) : node.fillColor);
        switch (node.kind) {
        case FigureNodeKind::Feature:
            break;
        case FigureNodeKind::Error:
            out << ", style=\"filled,dashed\"";
            break;
        case FigureNodeKind::Embedding:
        case FigureNodeKind::Logit:
            out << ", style=filled";
            break;
        case FigureNodeKind::Supernode:
            out << ", peripheries=2";
            break;
        }
        if (node.intervened)
            out << ", color=" << quoted(colors.intervened) << ", penwidth=3";
        else if (node.pinned)
            out << ", penwidth=1.6";
        out << "];\n";
    }
    for (size_t r = 0; r < layers.size(); ++r) {
        out << "  { rank=same; r" << r << " [shape=point, style=invis, width=0.01, height=0.01, label=\"\"];";
        for (size_t i : order) {
            if (rankOf(spec.nodes[i].layer) == r)
                out << " n" << i << ";";
        }
        out << " }\n";
    }
    for (size_t r = 0; r + 1 < layers.size(); ++r)
        out << "  r" << r << " -> r" << r + 1 << " [style=invis, constraint=true, arrowhead=none];\n";
    // Within a rank, positions run left to right as in the window: dot keeps a flat edge's tail
    // left of its head, so an invisible chain through each rank in position order fixes the
    // order its crossing minimisation would otherwise shuffle (the token axis above all).
    for (size_t r = 0; r < layers.size(); ++r) {
        size_t previous = SIZE_MAX;
        for (size_t i : order) {
            if (rankOf(spec.nodes[i].layer) != r)
                continue;
            if (previous != SIZE_MAX)
                out << "  n" << previous << " -> n" << i << " [style=invis, arrowhead=none];\n";
            previous = i;
        }
    }

    // Edges: colour by sign, pen width by |weight| as a share of the largest |weight|.
    double largest = 0;
    for (const FigureEdge& edge : spec.edges)
        largest = std::max(largest, std::fabs(edge.weight));
    for (size_t j = 0; j < spec.edges.size(); ++j) {
        const FigureEdge& edge = spec.edges[j];
        const int source = spec.indexOf(edge.source);
        const int target = spec.indexOf(edge.target);
        if (source < 0 || target < 0)
            throw Error("figure: edge " + edge.source + " -> " + edge.target + " names a node the figure lacks");
        const double share = largest > 0 ? std::fabs(edge.weight) / largest : 0;
        // An edge up the layers constrains the ranks as the anchors do (dot then also pulls its
        // ends together horizontally); one within a rank or downwards (a supernode's mean layer
        // can sit above a member's target) must not, or it would move ranks apart.
        const bool upwards
            = spec.nodes[static_cast<size_t>(target)].layer > spec.nodes[static_cast<size_t>(source)].layer;
        out << "  n" << source << " -> n" << target << " [csindex=" << j << (upwards ? "" : ", constraint=false")
            << ", id=" << quoted("edge:" + edge.source + "->" + edge.target)
            << ", color=" << quoted(edge.weight >= 0 ? colors.positive : colors.negative)
            << ", penwidth=" << number(0.6 + 4.4 * share) << ", tooltip=" << quoted(formatNumber(edge.weight))
            << "];\n";
    }
    out << "}\n";
    return out.str();
}

std::mutex& graphvizMutex()
{
    static std::mutex mutex;
    return mutex;
}

// What Graphviz reported while the mutex is held (its error hook is one global function).
std::string& graphvizMessages()
{
    static std::string messages;
    return messages;
}

int collectMessage(char* message)
{
    graphvizMessages() += message;
    return 0;
}

std::string trimmed(std::string text)
{
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
        text.pop_back();
    size_t start = 0;
    while (start < text.size() && std::isspace(static_cast<unsigned char>(text[start])))
        ++start;
    for (char& c : text) {
        if (c == '\n')
            c = ' ';
    }
    return text.substr(start);
}

// Holds the mutex and hooks Graphviz's error output for one call.
class GraphvizSession {
public:
    GraphvizSession()
        : m_lock(graphvizMutex())
    {
        graphvizMessages().clear();
        agseterrf(collectMessage);
        agreseterrors();
        if (!context())
            context() = gvContext(); // loads the installed plugins (config6a)
        if (!context())
            throw Error("Graphviz could not start (gvContext failed)");
    }
    ~GraphvizSession()
    {
        if (m_graph) {
            if (m_laidOut)
                gvFreeLayout(context(), m_graph);
            agclose(m_graph);
        }
        agreseterrors();
        agseterrf(nullptr);
    }
    GraphvizSession(const GraphvizSession&) = delete;
    GraphvizSession& operator=(const GraphvizSession&) = delete;

    static GVC_t*& context()
    {
        static GVC_t* gvc = nullptr; // one for the process, used under the mutex only
        return gvc;
    }

    // True when Graphviz reported an error since the last check; `why` gets its messages.
    bool failed(std::string& why)
    {
        const bool error = agreseterrors() >= AGERR;
        why = trimmed(graphvizMessages());
        graphvizMessages().clear();
        return error;
    }

    Agraph_t* layout(const std::string& dot, const std::string& what)
    {
        std::string why;
        m_graph = agmemread(dot.c_str());
        if (!m_graph || failed(why))
            throw Error(what + ": Graphviz could not read the figure" + (why.empty() ? "" : ": " + why));
        if (gvLayout(context(), m_graph, "dot") != 0 || failed(why))
            throw Error(what + ": the dot layout failed" + (why.empty() ? "" : ": " + why));
        m_laidOut = true;
        return m_graph;
    }

    bool hasPlugin(const char* kind, const char* name)
    {
        int count = 0;
        char** list = gvPluginList(context(), kind, &count, nullptr);
        bool found = false;
        for (int i = 0; i < count; ++i) {
            if (list[i] && std::strcmp(list[i], name) == 0)
                found = true;
            std::free(list[i]);
        }
        std::free(list);
        return found;
    }

private:
    std::lock_guard<std::mutex> m_lock;
    Agraph_t* m_graph = nullptr;
    bool m_laidOut = false;
};

std::string lowerExtension(const std::string& path)
{
    const size_t slash = path.find_last_of('/');
    const size_t dot = path.find_last_of('.');
    if (dot == std::string::npos || (slash != std::string::npos && dot < slash))
        return {};
    std::string ext = path.substr(dot);
    for (char& c : ext)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return ext;
}

} // namespace

std::string toDot(const FigureSpec& spec)
{
    return dotText(spec, 0);
}

FigureLayout layoutFigure(const FigureSpec& spec)
{
    if (spec.nodes.empty())
        throw Error("figure layout: the figure has no nodes");
    const std::string dot = dotText(spec, 0);
    GraphvizSession session;
    Agraph_t* g = session.layout(dot, "figure layout");

    const boxf bb = GD_bb(g);
    const auto flip = [&](pointf p) { return FigurePoint { p.x - bb.LL.x, bb.UR.y - p.y }; };
    FigureLayout layout;
    layout.width = bb.UR.x - bb.LL.x;
    layout.height = bb.UR.y - bb.LL.y;
    layout.padding = kPadInches * 72;
    layout.nodes.resize(spec.nodes.size());
    for (size_t i = 0; i < spec.nodes.size(); ++i) {
        std::string name = "n" + std::to_string(i);
        Agnode_t* n = agnode(g, name.data(), 0);
        if (!n)
            throw Error("figure layout: Graphviz lost node " + spec.nodes[i].id);
        const FigurePoint centre = flip(ND_coord(n));
        layout.nodes[i] = { spec.nodes[i].id, centre.x, centre.y, ND_width(n) * 72, ND_height(n) * 72 };
    }
    layout.edges.resize(spec.edges.size());
    std::vector<bool> seen(spec.edges.size(), false);
    char indexName[] = "csindex";
    for (Agnode_t* n = agfstnode(g); n; n = agnxtnode(g, n)) {
        for (Agedge_t* e = agfstout(g, n); e; e = agnxtout(g, e)) {
            const char* index = agget(e, indexName);
            if (!index || !*index)
                continue; // an anchor edge
            const size_t j = std::strtoul(index, nullptr, 10);
            if (j >= spec.edges.size())
                continue;
            FigureLayoutEdge& edge = layout.edges[j];
            edge.source = spec.edges[j].source;
            edge.target = spec.edges[j].target;
            edge.weight = spec.edges[j].weight;
            const splines* spl = ED_spl(e);
            if (spl) {
                for (int b = 0; b < spl->size; ++b) {
                    const bezier& curve = spl->list[b];
                    for (int k = 0; k < curve.size; ++k)
                        edge.points.push_back(flip(curve.list[k]));
                    if (curve.eflag)
                        edge.arrowTip = flip(curve.ep);
                    else if (curve.size > 0)
                        edge.arrowTip = flip(curve.list[curve.size - 1]);
                }
            }
            seen[j] = true;
        }
    }
    for (size_t j = 0; j < seen.size(); ++j) {
        if (!seen[j])
            throw Error("figure layout: Graphviz lost edge " + spec.edges[j].source + " -> " + spec.edges[j].target);
    }
    return layout;
}

FigureFormat formatFromPath(const std::string& path)
{
    const std::string ext = lowerExtension(path);
    if (ext == ".svg")
        return FigureFormat::Svg;
    if (ext == ".pdf")
        return FigureFormat::Pdf;
    if (ext == ".png")
        return FigureFormat::Png;
    throw Error("cannot export a figure to " + path + ": unknown file type \"" + ext + "\" (use .svg, .pdf or .png)");
}

void exportFigure(const FigureSpec& spec, const std::string& path, FigureFormat format, const ExportOptions& options)
{
    const std::string what = "cannot export the figure to " + path;
    if (spec.nodes.empty())
        throw Error(what + ": the figure has no nodes");
    if (format == FigureFormat::Png && !(options.dpi >= 1 && options.dpi <= 2400))
        throw Error(what + ": the resolution must be between 1 and 2400 dpi, not " + number(options.dpi));
    const std::string dot = dotText(spec, format == FigureFormat::Png ? options.dpi : 0);

    GraphvizSession session;
    // SVG from Graphviz's core renderer keeps the text as <text>; PDF and PNG need cairo.
    const char* renderer = format == FigureFormat::Svg ? "svg" : "cairo";
    const char* device = format == FigureFormat::Svg ? "svg" : format == FigureFormat::Pdf ? "pdf" : "png";
    if (!session.hasPlugin("render", renderer) || !session.hasPlugin("device", device))
        throw Error(what + ": Graphviz has no " + device + " renderer here (its " + renderer
            + " plugin is missing; install libgvc6 / graphviz)");
    const std::string outputFormat = format == FigureFormat::Svg ? "svg" : std::string(device) + ":cairo";

    Agraph_t* g = session.layout(dot, what);

    // A temporary sibling first, renamed over the target only once complete.
    std::string temporary = path + ".tmp-XXXXXX";
    const int fd = ::mkstemp(temporary.data());
    if (fd < 0)
        throw Error(what + ": " + std::strerror(errno));
    ::close(fd);
    struct Unlink {
        std::string path;
        bool armed = true;
        ~Unlink()
        {
            if (armed)
                ::unlink(path.c_str());
        }
    } cleanup { temporary };

    std::string why;
    const int rc = gvRenderFilename(GraphvizSession::context(), g, outputFormat.c_str(), temporary.c_str());
    if (session.failed(why) || rc != 0)
        throw Error(what + ": Graphviz could not render it" + (why.empty() ? "" : ": " + why));
    struct stat info { };
    if (::stat(temporary.c_str(), &info) != 0 || info.st_size == 0)
        throw Error(what + ": Graphviz wrote nothing");
    ::chmod(temporary.c_str(), 0644);
    if (::rename(temporary.c_str(), path.c_str()) != 0)
        throw Error(what + ": " + std::strerror(errno));
    cleanup.armed = false;
}

} // namespace cs::app
