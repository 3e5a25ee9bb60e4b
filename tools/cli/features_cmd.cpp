// circuitscope-cli features show | search | label | info | export (and build and merge, in
// features_build_cmd.cpp): the feature store (docs/ARCHITECTURE.md §9), what each transcoder
// feature means.
#include "commands.h"

#include "cs/error.h"
#include "cs/features.h"

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <optional>
#include <sstream>

namespace cs::cli {

namespace {

using features::Example;
using features::FeatureRecord;
using features::FeatureStore;
using Json = nlohmann::json;

constexpr int kBarWidth = 40; // characters of the longest histogram bar
constexpr int64_t kBefore = 12, kAfter = 4; // tokens shown around the firing token

std::string storeArg(const Args& args, const std::string& command)
{
    const auto& pos = args.positional();
    if (pos.size() < 3)
        throw Error("features " + command + " needs a feature store (DB)");
    return pos[2];
}

// "LAYER:FEATURE", both non-negative integers.
std::pair<int64_t, int64_t> featureArg(const Args& args, const std::string& command)
{
    const auto& pos = args.positional();
    if (pos.size() < 4)
        throw Error("features " + command + " needs the feature as LAYER:FEATURE");
    const std::string& text = pos[3];
    const auto colon = text.find(':');
    try {
        if (colon != std::string::npos && colon > 0 && colon + 1 < text.size()
            && text.find_first_not_of("0123456789:") == std::string::npos
            && text.find(':', colon + 1) == std::string::npos)
            return { std::stoll(text.substr(0, colon)), std::stoll(text.substr(colon + 1)) };
    } catch (const std::exception&) {
    }
    throw Error("\"" + text + "\" is not a feature: write LAYER:FEATURE, e.g. 3:1024");
}

// Text from a store (tokens, labels) as it may reach a terminal: control bytes escaped (\n, \t,
// \r, else \xNN), so an ESC in a vocabulary entry never drives the terminal (issue 23).
std::string visible(const std::string& token)
{
    std::string out;
    for (char ch : token) {
        const auto c = static_cast<unsigned char>(ch);
        if (ch == '\n')
            out += "\\n";
        else if (ch == '\t')
            out += "\\t";
        else if (ch == '\r')
            out += "\\r";
        else if (c < 0x20 || c == 0x7f) {
            char hex[8];
            std::snprintf(hex, sizeof hex, "\\x%02x", c);
            out += hex;
        } else
            out += ch;
    }
    return out;
}

std::string tokenText(const std::vector<std::string>& vocabulary, int64_t id)
{
    if (id >= 0 && static_cast<size_t>(id) < vocabulary.size())
        return visible(vocabulary[static_cast<size_t>(id)]);
    return "[" + std::to_string(id) + "]";
}

std::string number(double v)
{
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4g", v);
    return buf;
}

// One line: the tokens around the firing one, which is marked «so», and the activation.
std::string exampleLine(const Example& e, const std::vector<std::string>& vocabulary)
{
    const int64_t n = static_cast<int64_t>(e.tokens.size());
    const int64_t from = std::max<int64_t>(0, e.position - kBefore), to = std::min(n, e.position + kAfter + 1);
    std::string text = from > 0 ? "…" : "";
    for (int64_t i = from; i < to; ++i) {
        const std::string t = tokenText(vocabulary, e.tokens[i]);
        text += i == e.position ? "«" + t + "»" : t;
    }
    if (to < n)
        text += "…";
    char head[32];
    std::snprintf(head, sizeof head, "  %9.4g  ", e.activation);
    return head + text;
}

void printTokens(const char* title, const std::vector<features::TokenValue>& list)
{
    if (list.empty())
        return;
    std::cout << title << ":";
    for (const auto& t : list)
        std::cout << " \"" << visible(t.token) << "\" (" << (t.value >= 0 ? "+" : "") << number(t.value) << ")";
    std::cout << "\n";
}

void printCard(const FeatureRecord& r, const FeatureStore& store)
{
    const auto vocabulary = store.vocabulary();
    std::cout << "layer " << r.layer << " feature " << r.feature;
    if (!r.label.empty())
        std::cout << ": " << visible(r.label);
    std::cout << "\n";
    if (!r.notes.empty())
        std::cout << "notes: " << visible(r.notes) << "\n";
    std::printf("fires on %.4g%% of %lld tokens (%lld); max %s, min %s, mean %s\n", 100 * r.activationFrequency(),
        static_cast<long long>(r.tokens), static_cast<long long>(r.activeTokens), number(r.actMax).c_str(),
        number(r.actMin).c_str(), number(r.activeTokens > 0 ? r.actSum / double(r.activeTokens) : 0.0).c_str());
    if (!r.quantileLevels.empty()) {
        std::cout << "quantiles:";
        for (size_t i = 0; i < r.quantileLevels.size() && i < r.quantileValues.size(); ++i)
            std::cout << " p" << number(100 * r.quantileLevels[i]) << " " << number(r.quantileValues[i]);
        std::cout << "\n";
    }
    if (!r.histogramCounts.empty() && r.histogramEdges.size() == r.histogramCounts.size() + 1) {
        std::cout << "histogram of positive activations:\n";
        const int64_t most = *std::max_element(r.histogramCounts.begin(), r.histogramCounts.end());
        for (size_t i = 0; i < r.histogramCounts.size(); ++i) {
            const int64_t c = r.histogramCounts[i];
            const int width = most > 0 ? static_cast<int>((c * kBarWidth + most - 1) / most) : 0;
            std::string bar;
            for (int k = 0; k < width; ++k)
                bar += "█";
            std::printf("  %9.4g - %-9.4g %s %lld\n", r.histogramEdges[i], r.histogramEdges[i + 1], bar.c_str(),
                static_cast<long long>(c));
        }
    }
    if (!r.top.empty()) {
        std::cout << "top activations:\n";
        for (const Example& e : r.top)
            std::cout << exampleLine(e, vocabulary) << "\n";
    }
    for (const auto& q : r.quantiles) {
        std::cout << visible(q.name) << ":\n";
        for (const Example& e : q.examples)
            std::cout << exampleLine(e, vocabulary) << "\n";
    }
    printTokens("top logits", r.topLogits);
    printTokens("bottom logits", r.bottomLogits);
    printTokens("top inputs", r.topInputs);
}

int show(const Args& args)
{
    const std::string db = storeArg(args, "show");
    const auto [layer, feature] = featureArg(args, "show");
    const auto store = FeatureStore::open(db);
    const FeatureRecord r = store->card(layer, feature);
    if (args.flag("json")) {
        Json j = features::circuitTracerJson(r, store->vocabulary());
        j["notes"] = r.notes;
        std::cout << dump(j) << "\n";
    } else {
        printCard(r, *store);
    }
    return 0;
}

int search(const Args& args)
{
    const std::string db = storeArg(args, "search");
    const auto& pos = args.positional();
    if (pos.size() < 4)
        throw Error("features search needs the TEXT to look for in labels");
    const int64_t limit = args.intOr("limit", 50);
    if (limit <= 0)
        throw Error("--limit must be positive");
    const auto hits = FeatureStore::open(db)->search(pos[3], limit);
    if (args.flag("json")) {
        Json out = Json::array();
        for (const auto& h : hits)
            out.push_back({ { "layer", h.layer }, { "feature", h.feature }, { "label", h.label } });
        std::cout << dump(out) << "\n";
    } else {
        for (const auto& h : hits)
            std::cout << h.layer << ":" << h.feature << "\t" << visible(h.label) << "\n";
        if (hits.empty())
            std::cout << "no label contains \"" << pos[3] << "\"\n";
    }
    return 0;
}

int label(const Args& args)
{
    const std::string db = storeArg(args, "label");
    const auto [layer, feature] = featureArg(args, "label");
    const auto text = args.value("label");
    if (!text)
        throw Error("features label needs --label TEXT (an empty one removes the label)");
    const auto store = FeatureStore::open(db, true);
    store->setLabel(layer, feature, *text, args.valueOr("notes", ""));
    std::cout << layer << ":" << feature << "\t" << *text << "\n";
    return 0;
}

int info(const Args& args)
{
    const std::string db = storeArg(args, "info");
    const auto store = FeatureStore::open(db);
    const auto i = store->info();
    const int64_t labelled = static_cast<int64_t>(store->search("", -1).size());
    Json j = { { "path", db }, { "model", i.model }, { "scan", i.scan }, { "n_layers", i.nLayers },
        { "n_features", i.nFeatures }, { "context_length", i.contextLength }, { "tokens", i.tokens },
        { "complete", i.complete }, { "features", store->count() }, { "labels", labelled },
        { "vocabulary", store->vocabulary().size() }, { "resumable", store->buildState().has_value() },
        { "build_options", i.buildOptions }, { "coactivations", store->hasCoactivations() },
        { "basis", i.buildOptions.is_object() ? i.buildOptions.value("basis", std::string("features")) : "features" } };
    // A part of a --distributed build holds a rank's state and no features: say which, and whether
    // it can be merged.
    std::optional<features::PartInfo> part;
    if (i.buildOptions.is_object() && i.buildOptions.contains("part")) {
        part = features::readPart(db);
        j["part"] = { { "rank", part->rank }, { "ranks", part->ranks }, { "finished", part->finished },
            { "model_folder", part->modelFolder }, { "transcoder_folder", part->transcoderFolder } };
    }
    if (args.flag("json")) {
        std::cout << dump(j) << "\n";
    } else {
        const bool units = j["basis"] != "features"; // a store of the model's own units (--basis neurons)
        std::cout << "model: " << i.model << (units ? "\nbasis: the model's MLP " : "\ntranscoders: ") << i.scan
                  << "\nlayers: " << i.nLayers << "\nfeatures per layer: " << i.nFeatures
                  << "\nfeatures with statistics: " << store->count() << "\nlabels: " << labelled
                  << "\ncontext length: " << i.contextLength << "\ntokens: " << i.tokens << "\nbuild: "
                  << (i.complete                   ? "complete"
                             : store->buildState() ? "interrupted (resumable)"
                                                   : "incomplete")
                  << "\nco-activation statistics (ERA / TWERA): " << (store->hasCoactivations() ? "yes" : "no")
                  << "\nbuild options: " << dump(i.buildOptions) << "\n";
        if (part)
            std::cout << "part: rank " << part->rank << " of " << part->ranks << " of a distributed build, "
                      << (part->finished ? "finished (features merge combines it with the others)"
                                         : "unfinished (the job's command resumes it)")
                      << "\n";
    }
    return 0;
}

int exportStore(const Args& args)
{
    const std::string db = storeArg(args, "export");
    const std::string format = args.valueOr("format", "circuit-tracer");
    if (format != "circuit-tracer")
        throw Error("--format must be circuit-tracer, not \"" + format + "\"");
    const auto out = args.value("out");
    if (!out || out->empty())
        throw Error("features export needs --out DIR");
    const std::string layout = args.valueOr("layout", "layers");
    if (layout != "layers" && layout != "cantor")
        throw Error(
            "--layout must be layers (DIR/LAYER/FEATURE.json) or cantor (DIR/INDEX.json), not \"" + layout + "\"");
    const auto store = FeatureStore::open(db);
    const int64_t n = features::exportCircuitTracer(
        *store, *out, layout == "cantor" ? features::ExportLayout::Cantor : features::ExportLayout::LayerFolders);
    std::cout << n << " features written to " << *out << "\n";
    return 0;
}

} // namespace

int cmdFeatures(const Args& args, const std::string& device)
{
    const auto& pos = args.positional();
    const std::string sub = pos.size() > 1 ? pos[1] : "";
    if (sub == "build")
        return cmdFeaturesBuild(args, device);
    if (sub == "merge")
        return cmdFeaturesMerge(args, device);
    if (sub == "show")
        return show(args);
    if (sub == "search")
        return search(args);
    if (sub == "label")
        return label(args);
    if (sub == "info")
        return info(args);
    if (sub == "export")
        return exportStore(args);
    throw Error("features needs a subcommand: build, merge, show, search, label, info or export");
}

} // namespace cs::cli
