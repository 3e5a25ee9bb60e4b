#include "explorerengine.h"

#include <ATen/ATen.h>

#include <cs/attribution.h>
#include <cs/error.h>
#include <cs/model.h>
#include <cs/replacement.h>
#include <cs/tokenizer.h>
#include <cs/transcoder.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <set>

namespace cs::app {

namespace fs = std::filesystem;

ResourcesInfo loadResources(ExplorerResources& resources, std::shared_ptr<const cs::model::Model> model,
    const std::string& transcoder, const std::string& storePath)
{
    if (!model)
        throw cs::Error("no model is open");
    const std::string folder = cs::transcoder::resolveTranscoderFolder(model->folder(), transcoder);
    cs::transcoder::TranscoderSet::LoadOptions options;
    options.device = model->device().str();
    auto set = cs::transcoder::TranscoderSet::load(folder, options);
    set->checkFits(model->config());

    ResourcesInfo info;
    info.transcoderFolder = folder;
    info.transcoderName = fs::path(folder).filename().string();
    info.architecture = cs::transcoder::architectureName(set->config().architecture);
    info.featuresPerLayer = set->nFeatures();

    std::unique_ptr<cs::features::FeatureStore> store;
    const std::string path = storePath.empty() ? cs::features::findStore(model->folder(), folder) : storePath;
    if (!path.empty()) {
        try {
            store = cs::features::FeatureStore::open(path, false);
            // A store describes one set's features: another set's cards would mislead.
            const cs::features::StoreInfo si = store->info();
            const std::string scan = set->config().scan.empty() ? info.transcoderName : set->config().scan;
            if (si.nLayers != set->nLayers() || si.nFeatures != set->nFeatures() || si.scan != scan) {
                info.storeProblem = path + " describes " + si.scan + " (" + std::to_string(si.nLayers) + " layers of "
                    + std::to_string(si.nFeatures) + " features), not " + scan + " (" + std::to_string(set->nLayers())
                    + " of " + std::to_string(set->nFeatures()) + ")";
                store.reset();
            } else {
                info.storePath = path;
                info.storeFeatures = store->count();
            }
        } catch (const cs::Error& e) {
            info.storeProblem = e.what();
        }
    }
    // Replace everything at once: the old context belongs to the old set.
    resources.model = std::move(model);
    resources.transcoders = std::move(set);
    resources.transcoderFolder = folder;
    resources.store = std::move(store);
    resources.context.reset();
    resources.contextIds.clear();
    return info;
}

void readCaptions(const ExplorerResources& resources, const cs::graph::Graph& graph,
    std::map<std::string, std::string>& storeLabels, std::map<std::string, std::string>& autoCaptions,
    const std::vector<float>* influence)
{
    // A unit graph's nodes are the model's units: only the unit store describes them.
    const bool units = !graph.metadata.basis.empty();
    const cs::features::FeatureStore* store
        = units ? (graph.metadata.basis == "neurons" ? resources.unitStore.get() : nullptr) : resources.store.get();
    const auto& vocabulary = units ? resources.unitVocabulary : resources.vocabulary;
    if (!store)
        return;
    const auto features = graph.ranges().features;
    std::vector<int64_t> order;
    for (int64_t i = features.begin; i < features.end; ++i)
        order.push_back(i);
    // Past the budget, the most influential features get captions (those a prune keeps).
    if (static_cast<int64_t>(order.size()) > kMaxCaptionedFeatures && influence
        && influence->size() == graph.nodes.size()) {
        std::nth_element(order.begin(), order.begin() + kMaxCaptionedFeatures, order.end(),
            [&](int64_t a, int64_t b) { return (*influence)[size_t(a)] > (*influence)[size_t(b)]; });
        order.resize(static_cast<size_t>(kMaxCaptionedFeatures));
    } else if (static_cast<int64_t>(order.size()) > kMaxCaptionedFeatures) {
        order.resize(static_cast<size_t>(kMaxCaptionedFeatures));
    }
    for (const int64_t i : order) {
        const auto& node = graph.nodes[static_cast<size_t>(i)];
        const std::string key = featureKey(node.layer, node.feature);
        if (storeLabels.count(key) || autoCaptions.count(key) || !store->has(node.layer, node.feature))
            continue;
        const auto record = store->card(node.layer, node.feature);
        if (!record.label.empty())
            storeLabels[key] = record.label;
        static const std::vector<std::string> none;
        const std::string description = cs::features::describe(record, vocabulary ? *vocabulary : none);
        if (!description.empty())
            autoCaptions[key] = description;
    }
}

TraceOutput traceGraph(ExplorerResources& resources, const TraceRequest& request)
{
    if (!resources.model || !resources.transcoders)
        throw cs::Error("no transcoders are loaded: open a model with a transcoder set first");
    if (request.prompt.empty())
        throw cs::Error("the prompt is empty: type a prompt to trace");
    const auto start = std::chrono::steady_clock::now();
    const auto ids = resources.model->tokenizer().encode(request.prompt);
    auto context = std::make_shared<cs::attribution::ReplacementContext>(
        cs::attribution::buildContext(resources.model, resources.transcoders, ids));

    cs::attribution::TraceOptions options;
    options.maxFeatureNodes = request.maxFeatureNodes;
    options.logits.maxNLogits = request.maxNLogits;
    options.logits.desiredLogitProb = request.desiredLogitProb;
    const auto stage = [&](const char* text) {
        if (request.stage)
            request.stage(text);
    };
    // The rows are the progress bar; what follows the last one gets a name of its own.
    options.progress = [&](double fraction) {
        const bool go = !request.progress || request.progress(fraction);
        if (fraction >= 1.0)
            stage("assembling the graph and checking its exactness");
        return go;
    };
    stage("computing the attribution rows");
    cs::attribution::TraceResult result = cs::attribution::trace(*context, options);
    stage("pruning");

    auto graph = std::make_shared<cs::graph::Graph>(std::move(result.graph));
    graph->metadata.prompt = request.prompt;
    graph->metadata.slug = "circuitscope";
    auto pruner = std::make_shared<const cs::graph::Pruner>(*graph);
    const auto scores = pruner->scores();
    graph->metadata.extra["scores"] = cs::graph::scoresJson(scores);

    TraceOutput out;
    out.traceMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    stage("reading feature descriptions");
    const auto captionsStart = std::chrono::steady_clock::now();
    readCaptions(resources, *graph, out.storeLabels, out.autoCaptions, &pruner->influence());
    out.captionMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - captionsStart).count();
    out.graph = std::move(graph);
    out.pruner = std::move(pruner);
    out.maxRelResidual = result.exactness.maxRelResidual;
    resources.context = std::move(context);
    resources.contextIds = ids;
    resources.unitBasis.clear();
    resources.unitIds.clear();
    return out;
}

bool graphIsOfPrompt(const cs::graph::Graph& graph, const std::vector<int64_t>& ids)
{
    if (static_cast<int64_t>(ids.size()) != graph.nPositions())
        return false;
    const auto ranges = graph.ranges();
    for (int64_t i = ranges.embeddings.begin; i < ranges.embeddings.end; ++i) {
        const auto& node = graph.nodes[static_cast<size_t>(i)];
        if (node.position < 0 || node.position >= static_cast<int64_t>(ids.size())
            || (node.tokenId >= 0 && node.tokenId != ids[static_cast<size_t>(node.position)]))
            return false;
    }
    return true;
}

bool prepareContext(
    ExplorerResources& resources, const cs::graph::Graph& graph, std::shared_ptr<const cs::model::Model> model)
{
    resources.context.reset();
    resources.contextIds.clear();
    resources.unitBasis.clear();
    resources.unitIds.clear();
    if (!graph.metadata.basis.empty())
        return prepareUnitContext(resources, graph, model ? std::move(model) : resources.model);
    if (!resources.model || !resources.transcoders || graph.metadata.prompt.empty())
        return false;
    const auto ids = resources.model->tokenizer().encode(graph.metadata.prompt);
    if (!graphIsOfPrompt(graph, ids))
        return false;
    // The graph's embeddings must be this prompt's tokens, and its features this set's.
    const auto ranges = graph.ranges();
    for (int64_t i = ranges.features.begin; i < ranges.features.end; ++i) {
        const auto& node = graph.nodes[static_cast<size_t>(i)];
        if (node.layer < 0 || node.layer >= resources.transcoders->nLayers() || node.feature < 0
            || node.feature >= resources.transcoders->nFeatures())
            return false;
    }
    resources.context = std::make_shared<cs::attribution::ReplacementContext>(
        cs::attribution::buildContext(resources.model, resources.transcoders, ids));
    resources.contextIds = ids;
    return true;
}

namespace {

// The graph's nodes by id.
std::map<std::string, int64_t> nodeIndex(const cs::graph::Graph& graph)
{
    std::map<std::string, int64_t> index;
    for (int64_t i = 0; i < graph.size(); ++i)
        index.emplace(cs::graph::nodeId(graph, i), i);
    return index;
}

} // namespace

std::vector<cs::intervention::FeatureEdit> interventionEdits(
    const cs::graph::Graph& graph, const ExplorerState& state, std::vector<std::string>* skipped)
{
    const auto index = nodeIndex(graph);
    std::vector<cs::intervention::FeatureEdit> edits;
    for (const Intervention& intervention : state.interventions) {
        if (!intervention.enabled)
            continue;
        for (const std::string& id : interventionNodes(state, intervention)) {
            const auto it = index.find(id);
            if (it == index.end()
                || graph.nodes[static_cast<size_t>(it->second)].kind != cs::graph::NodeKind::Feature) {
                if (skipped)
                    skipped->push_back(id);
                continue;
            }
            const auto& node = graph.nodes[static_cast<size_t>(it->second)];
            cs::intervention::FeatureEdit edit;
            edit.layer = node.layer;
            edit.feature = node.feature;
            switch (intervention.op) {
            case InterventionOp::Ablate:
                edit.op = cs::intervention::Op::Set;
                edit.value = 0;
                break;
            case InterventionOp::Scale:
                edit.op = cs::intervention::Op::Scale;
                edit.value = intervention.value;
                break;
            case InterventionOp::Inject:
                edit.op = cs::intervention::Op::Set;
                edit.value = intervention.value;
                break;
            case InterventionOp::Add:
                edit.op = cs::intervention::Op::Add;
                edit.value = intervention.value;
                break;
            }
            const std::vector<int64_t> positions
                = intervention.positions.empty() ? std::vector<int64_t> { node.position } : intervention.positions;
            std::set<int64_t> seen;
            for (int64_t p : positions) {
                if (!seen.insert(p).second)
                    continue;
                edit.position = p;
                edits.push_back(edit);
            }
        }
    }
    return edits;
}

bool interventionsFree(const ExplorerState& state)
{
    for (const Intervention& intervention : state.interventions)
        if (intervention.enabled && intervention.free)
            return true;
    return false;
}

cs::intervention::InterventionResult runIntervention(const ExplorerResources& resources,
    const std::vector<cs::intervention::FeatureEdit>& edits, const cs::intervention::InterventionOptions& options)
{
    if (!resources.context)
        throw cs::Error("interventions need the traced prompt's context: trace the prompt on this model first");
    return cs::intervention::intervene(*resources.context, edits, options);
}

cs::validation::PerturbationResult runPerturbation(const ExplorerResources& resources, const cs::graph::Graph& graph,
    const std::vector<int64_t>& sources, double factor)
{
    if (!resources.context)
        throw cs::Error("perturbations need the traced prompt's context: trace the prompt on this model first");
    return cs::validation::perturb(*resources.context, graph, sources, factor);
}

cs::validation::Validation runValidation(
    const ExplorerResources& resources, const cs::graph::Graph& graph, int64_t topN, double factor)
{
    if (!resources.context)
        throw cs::Error("validation needs the traced prompt's context: trace the prompt on this model first");
    return cs::validation::validateGraph(*resources.context, graph, topN, factor);
}

std::vector<InterventionTableRow> interventionTable(const ExplorerResources& resources,
    const std::vector<std::pair<std::string, std::vector<cs::intervention::FeatureEdit>>>& rows,
    const std::vector<int64_t>& tokens, cs::intervention::Regime regime)
{
    if (!resources.context)
        throw cs::Error("the table needs the traced prompt's context: trace the prompt on this model first");
    const auto& ctx = *resources.context;
    const at::Tensor own = ctx.logits[ctx.nPos() - 1].to(at::kCPU, at::kDouble).contiguous(); // [vocab]
    const at::Tensor ownProbs = at::softmax(own, -1);
    const int64_t ownTop = own.argmax().item<int64_t>();
    std::vector<InterventionTableRow> out;
    for (const auto& [name, edits] : rows) {
        InterventionTableRow row;
        row.name = name;
        if (edits.empty()) {
            for (int64_t t : tokens)
                row.logits.push_back(own[t].item<double>());
            row.top = ctx.model->tokenizer().tokenText(ownTop);
            row.topProb = ownProbs[ownTop].item<double>();
        } else {
            cs::intervention::InterventionOptions o;
            o.regime = regime;
            o.topK = 1;
            o.watchTokens = tokens;
            const auto r = cs::intervention::intervene(ctx, edits, o);
            for (int64_t t : tokens)
                row.logits.push_back(own[t].item<double>() + r.logitDelta.at(t));
            row.top = r.after.front().token;
            row.topProb = r.after.front().prob;
        }
        out.push_back(std::move(row));
    }
    return out;
}

cs::intervention::InterventionResult baseline(const ExplorerResources& resources, int64_t topK, int64_t generate)
{
    if (!resources.context)
        throw cs::Error("no traced prompt");
    const auto& active = resources.context->active;
    // intervene() needs an edit; scaling one active feature by 1 changes nothing, so its
    // "before" and "after" are both the unedited model.
    cs::intervention::FeatureEdit identity;
    if (active.size() > 0) {
        const cs::attribution::ActiveFeatures::Entry first = active.entry(0);
        identity.layer = first.layer;
        identity.position = first.position;
        identity.feature = first.feature;
    } else {
        identity.layer = 0;
        identity.position = resources.context->nPos() - 1;
        identity.feature = 0;
    }
    identity.op = cs::intervention::Op::Scale;
    identity.value = 1;
    cs::intervention::InterventionOptions options;
    options.topK = topK;
    options.generate = generate;
    options.maxChanged = 0;
    return cs::intervention::intervene(*resources.context, { identity }, options);
}

// --- Global weights

std::string featureCaption(const ExplorerResources& resources, int64_t layer, int64_t feature)
{
    if (!resources.store || !resources.store->has(layer, feature))
        return {};
    const auto record = resources.store->card(layer, feature);
    if (!record.label.empty())
        return record.label;
    static const std::vector<std::string> none;
    return cs::features::describe(record, resources.vocabulary ? *resources.vocabulary : none);
}

PartnerLists featurePartners(
    const ExplorerResources& resources, int64_t layer, int64_t feature, cs::weights::Kind kind, int64_t top)
{
    if (!resources.model || !resources.transcoders)
        throw cs::Error("no transcoders are loaded: open a model with a transcoder set first");
    PartnerLists out;
    out.statistics = resources.store && resources.store->hasCoactivations();
    out.kind = out.statistics ? kind : cs::weights::Kind::Virtual;
    const auto* store = out.statistics ? resources.store.get() : nullptr;
    const auto t0 = std::chrono::steady_clock::now();
    out.up = cs::weights::partners(
        *resources.model, *resources.transcoders, store, layer, feature, cs::weights::Direction::Up, out.kind, top);
    out.down = cs::weights::partners(
        *resources.model, *resources.transcoders, store, layer, feature, cs::weights::Direction::Down, out.kind, top);
    out.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    for (const auto& p : out.up.partners)
        out.upCaptions.push_back(featureCaption(resources, p.layer, p.feature));
    for (const auto& p : out.down.partners)
        out.downCaptions.push_back(featureCaption(resources, p.layer, p.feature));
    return out;
}

std::vector<std::string> splitTokens(const std::string& text)
{
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= text.size()) {
        const size_t bar = std::min(text.find('|', start), text.size());
        if (bar > start)
            out.push_back(text.substr(start, bar - start));
        start = bar + 1;
    }
    return out;
}

std::string defaultWeightTokens(const ExplorerResources& resources)
{
    if (!resources.model || !resources.model->hasTokenizer())
        return {};
    const auto& tokenizer = resources.model->tokenizer();
    for (const char* prefix : { " ", "" }) {
        std::string list;
        bool single = true;
        for (int digit = 0; digit <= 9 && single; ++digit) {
            const std::string token = prefix + std::to_string(digit);
            single = tokenizer.encode(token, false).size() == 1;
            list += (digit > 0 ? "|" : "") + token;
        }
        if (single)
            return list;
    }
    return {};
}

std::vector<TokenWeight> tokenWeights(
    const ExplorerResources& resources, int64_t layer, int64_t feature, const std::vector<std::string>& tokens)
{
    if (!resources.model || !resources.transcoders)
        throw cs::Error("no transcoders are loaded: open a model with a transcoder set first");
    const auto& tokenizer = resources.model->tokenizer();
    const at::Tensor ids = at::tensor(std::vector<int64_t> { feature }, at::kLong);
    // [vocab] each: the one feature's rows.
    const at::Tensor in = cs::weights::embeddingToFeatures(*resources.model, *resources.transcoders, layer, ids)
                              .select(0, 0)
                              .contiguous();
    const at::Tensor out
        = cs::weights::featureToLogits(*resources.model, *resources.transcoders, layer, ids).select(0, 0).contiguous();
    const float* inData = in.data_ptr<float>();
    const float* outData = out.data_ptr<float>();
    std::vector<TokenWeight> weights;
    for (const std::string& token : tokens) {
        TokenWeight w;
        w.token = token;
        const auto encoded = tokenizer.encode(token, false);
        w.pieces = int64_t(encoded.size());
        if (encoded.size() == 1 && encoded[0] >= 0 && encoded[0] < in.numel()) {
            w.id = encoded[0];
            w.input = inData[w.id];
            w.output = outData[w.id];
        }
        weights.push_back(std::move(w));
    }
    return weights;
}

SweepOutput runSweep(const ExplorerResources& resources, const cs::sweep::SweepOptions& options, int64_t top)
{
    if (!resources.model || !resources.transcoders)
        throw cs::Error("no transcoders are loaded: open a model with a transcoder set first");
    SweepOutput out;
    auto result
        = std::make_shared<cs::sweep::SweepResult>(cs::sweep::sweep(*resources.model, *resources.transcoders, options));
    out.findings = cs::sweep::rank(*result, top);
    for (const auto& f : out.findings)
        out.captions.push_back(featureCaption(resources, f.layer, f.feature));
    out.result = std::move(result);
    return out;
}

std::vector<float> operandGrid(const cs::sweep::SweepResult& result, int64_t layer, int64_t feature)
{
    if (layer < 0 || layer >= int64_t(result.activations.size()))
        return {};
    const at::Tensor& acts = result.activations[size_t(layer)]; // [a, b, n_features]
    if (acts.dim() != 3 || feature < 0 || feature >= acts.size(2))
        return {};
    // The UI thread calls this: read the values in place rather than run a tensor op there (a
    // parallel op on a second thread starts a second OpenMP team, which spins against the
    // worker's on a small machine).
    if (acts.is_contiguous() && acts.scalar_type() == at::kFloat && acts.device().is_cpu()) {
        const int64_t cells = acts.size(0) * acts.size(1), n = acts.size(2);
        const float* data = acts.data_ptr<float>();
        std::vector<float> grid(static_cast<size_t>(cells));
        for (int64_t c = 0; c < cells; ++c)
            grid[size_t(c)] = data[c * n + feature];
        return grid;
    }
    const at::Tensor grid = acts.select(2, feature).to(at::kFloat).contiguous(); // [a, b]
    const float* data = grid.data_ptr<float>();
    return std::vector<float>(data, data + grid.numel());
}

cs::sweep::Finding explainGrid(const cs::sweep::SweepResult& result, const std::vector<float>& grid)
{
    const at::Tensor map = at::from_blob(
        const_cast<float*>(grid.data()), { int64_t(result.a.size()), int64_t(result.b.size()) }, at::kFloat)
                               .clone();
    return cs::sweep::explain(map, result.a, result.b);
}

} // namespace cs::app
