// circuitscope-cli's commands and options, declared per subcommand with their help beside them
// and parsed by CLI11 (Debian's libcli11-dev). `circuitscope-cli COMMAND [SUB] --help` prints a
// command's own options; an option that is not one of the command's is an error.
#include "command_line.h"

#include "cs/error.h"

#include <CLI/CLI.hpp>

#include <iostream>

namespace cs::cli {

namespace {

// One option of a command: "--name" taking a value (shown as `value` in help) or a flag.
struct OptionSpec {
    const char* name; // without the dashes
    const char* value; // "" for a flag
    const char* help;
    bool repeats = false; // may be given several times, each kept (--set); otherwise the last wins
};

// One command ("trace", or "graph prune"), its positional arguments and its options.
struct CommandSpec {
    const char* path;
    const char* help;
    std::vector<std::pair<const char*, const char*>> positionals; // name, help (each optional here:
                                                                  // the command says which it needs)
    std::vector<OptionSpec> options;
    bool lastRepeats = false; // the last positional takes every word left (features merge PARTS...)
};

const std::pair<const char*, const char*> kModel { "MODEL",
    "a Hugging Face folder (config.json, model.safetensors, tokenizer.json) or the name of a model in "
    "resources/models (default: tinyworld)" };
const std::pair<const char*, const char*> kGraphIn { "IN",
    "a graph file: .csgraph (the full graph a trace saved) or a graph JSON (ours or circuit-tracer's)" };
const std::pair<const char*, const char*> kStore { "DB", "a feature store (SQLite), built by `features build`" };
const std::pair<const char*, const char*> kFeature { "LAYER:FEATURE", "a transcoder feature, e.g. 3:1207" };

const OptionSpec kJson { "json", "", "print JSON instead of text" };
const OptionSpec kText { "text", "T", "the prompt" };
const OptionSpec kIds { "ids", "1,2,3", "the prompt as token ids" };
const OptionSpec kTranscoder { "transcoder", "T",
    "a transcoder folder, or the name of a set shipped with MODEL (MODEL/transcoders/NAME; default clt)" };
const OptionSpec kNodeThreshold { "node-threshold", "X",
    "keep the nodes that carry this share of the influence (0.8)" };
const OptionSpec kEdgeThreshold { "edge-threshold", "X", "keep the edges that carry this share (0.98)" };

const std::vector<OptionSpec> kTrainShape {
    { "steps", "N", "training steps" },
    { "batch-size", "B", "sequences a step" },
    { "seq-len", "T", "tokens a sequence" },
    { "lr", "X", "peak learning rate" },
    { "warmup-steps", "N", "learning-rate warm-up steps (default: a tenth of the steps, at most the built-in)" },
    { "layers", "L", "transformer layers" },
    { "d-model", "D", "residual width" },
    { "heads", "H", "attention heads" },
    { "kv-heads", "K", "key/value heads (grouped-query attention)" },
    { "d-mlp", "M", "MLP width" },
    { "vocab", "V", "tokenizer vocabulary size" },
    { "tokenizer-lines", "N", "corpus lines the BPE tokenizer is trained on" },
    { "dtype", "F32|F16|BF16", "the stored weights' type" },
};

// A job over several processes (cs/distributed.h): torchrun's environment, or the same as flags.
const std::vector<OptionSpec> kDistributed {
    { "distributed", "",
        "one rank of a job over several processes (torchrun's RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, "
        "MASTER_PORT, or the flags below)" },
    { "rank", "R", "this process's rank (RANK)" },
    { "world-size", "W", "the job's processes (WORLD_SIZE)" },
    { "local-rank", "R", "the rank among this machine's processes, which picks the GPU (LOCAL_RANK)" },
    { "master-addr", "HOST", "rank 0's address (MASTER_ADDR; 127.0.0.1)" },
    { "master-port", "PORT", "rank 0's port for the job's store (MASTER_PORT; 29500)" },
    { "dist-backend", "gloo|nccl", "the collectives' backend (auto: nccl on GPUs, gloo on CPUs)" },
    { "dist-timeout", "S", "seconds to join and for one collective before the job is declared broken (300)" },
};

std::vector<CommandSpec> commands()
{
    std::vector<OptionSpec> organismBuild { { "out", "DIR", "the folder to build into (resumable)" },
        { "seed", "S", "the world's and the training's seed (1)" },
        { "world-version", "N", "the world's facts and templates (3)" } };
    organismBuild.insert(organismBuild.end(), kTrainShape.begin(), kTrainShape.end());
    organismBuild.push_back(kJson);
    std::vector<OptionSpec> transcoderTrain { { "corpus", "FILE", "training text, one document a line" },
        { "kind", "clt|plt", "cross-layer or per-layer" }, { "features", "N", "features a layer" },
        { "out", "DIR", "the set's folder" }, { "activation", "jump_relu|relu|topk", "the features' activation" },
        { "k", "K", "active features a token (topk)" }, { "skip", "", "a linear skip connection beside the features" },
        { "steps", "N", "training steps" }, { "batch-tokens", "B", "tokens a step (over the whole job)" },
        { "buffer-tokens", "N", "the shuffled activation buffer (over the whole job)" }, { "lr", "X", "learning rate" },
        { "lambda-sparsity", "X", "the sparsity penalty's weight" },
        { "sparsity-c", "X", "the tanh sparsity penalty's scale" },
        { "lambda-preact", "X", "the pre-activation penalty's weight (dead features)" },
        { "bandwidth", "X", "JumpReLU's straight-through bandwidth" },
        { "threshold-init", "X", "JumpReLU's initial threshold" }, { "seq-len", "T", "tokens a sequence" },
        { "cache", "DIR", "keep the model's activations here between runs" },
        { "seed", "S", "the initialization's and the data order's seed" },
        { "checkpoint-every", "N", "steps between checkpoints" },
        { "dtype", "F32|F16|BF16", "the stored weights' type" },
        { "input-hook", "HOOK", "where features read (mlp.hook_in, hook_resid_mid, ln2.hook_normalized)" },
        { "output-hook", "HOOK", "where features write (mlp.hook_out)" },
        { "shards", "S",
            "this process reads S shards of the corpus (1); a job has ranks x S shards, so one process with "
            "--shards W trains as W ranks of one shard do" },
        { "feature-sharded", "",
            "with --distributed: each rank holds a W-th of every layer's features and all train on rank 0's "
            "batches, for sets too large for one device (else data-parallel)" } };
    transcoderTrain.insert(transcoderTrain.end(), kDistributed.begin(), kDistributed.end());
    transcoderTrain.push_back(kJson);
    std::vector<OptionSpec> featuresBuild { { "corpus", "FILE", "text, one document a line" },
        { "out", "DB", "the store to write" }, kTranscoder, { "tokens", "N", "at most this many tokens" },
        { "context", "N", "tokens of context an example (64)" }, { "window", "W", "tokens a sequence" },
        { "top-k", "K", "top examples kept a feature" }, { "batch-size", "B", "sequences a batch" },
        { "checkpoint-every", "N", "batches between checkpoints" },
        { "no-coactivations", "", "skip the co-activation statistics (ERA / TWERA)" },
        { "basis", "features|neurons",
            "the transcoder's features, or the model's MLP neurons (no transcoder; MODEL/features/neurons.db "
            "is the explorer's neuron store)" },
        { "coactivation-partners", "K", "partners kept a feature and side by |ERA| and by |TWERA| (32; 0: all)" },
        kJson };
    featuresBuild.insert(featuresBuild.end() - 1, kDistributed.begin(), kDistributed.end()); // before --json
    featuresBuild.insert(featuresBuild.end() - 1,
        { "parts-only", "",
            "with --distributed: each rank finishes its part (DB.part-R-of-W) and they stay, for `features merge`" });
    return {
        { "info", "family, layers, d_model, heads, vocab, dtype, device", { kModel }, { kJson } },
        { "tokenize", "token ids and texts of a text, or many texts with the tokenizer alone", { kModel },
            { kText,
                { "batch", "FILE",
                    "one JSON value a line (- for stdin): a string to encode or a list of ids to decode; prints "
                    "{\"ids\", \"text\", \"valid_utf8\"} a line (MODEL may hold only tokenizer.json)" },
                kJson } },
        { "logits", "the next-token distribution", { kModel },
            { kText, kIds, { "top-k", "K", "how many of the most likely tokens (10)" },
                { "all-positions", "", "the logits at every position, not only the last" },
                { "hidden-states", "",
                    "add the residual stream [n_layers + 1][n_pos][d_model] (the embedding, then each layer's "
                    "output, before the final norm)" },
                kJson } },
        { "generate", "greedy or sampled continuation", { kModel },
            { kText, kIds, { "max-new", "N", "tokens to generate (16)" }, { "temperature", "X", "0 is greedy (0)" },
                { "seed", "S", "the sampling seed (0)" }, kJson } },
        { "bench", "matrix-product speed, the BLAS in use, forward, trace, prune and training timings", { kModel },
            { kJson, { "batch-size", "B", "the trace's batch size" },
                { "large", "", "also a Gemma-2-2B-shaped model with a 26 x 16,384 PLT (default on CUDA only)" },
                { "no-large", "", "not the large model" }, { "large-only", "", "only the large model" },
                { "large-features", "N", "features a layer of the large PLT (16,384)" },
                { "large-l0", "K", "active features a layer and position (64)" },
                { "long-tokens", "T", "the long prompt's tokens (4,096; 0 skips it)" },
                { "long-feature-nodes", "M", "the long prompt's feature cap (1,024)" },
                { "long-l0", "K", "the long prompt's active features a layer and position (16)" },
                { "short-feature-nodes", "N", "the 64-token prompt's feature cap (8,192; 0 skips it)" } } },
        { "trace",
            "an attribution graph (Neuronpedia / circuit-tracer JSON): node and edge counts, scores and exactness",
            { kModel },
            { kText, kIds, { "out", "G.json", "the pruned graph JSON to write" }, kTranscoder, kNodeThreshold,
                kEdgeThreshold,
                { "max-feature-nodes", "N", "at most this many feature nodes, the most influential (-1: all)" },
                { "max-n-logits", "N", "at most this many output tokens as targets (10)" },
                { "desired-logit-prob", "X", "targets until their probability adds up to this (0.95)" },
                { "method", "explicit|autograd", "how rows of the adjacency are computed (explicit)" },
                { "batch-size", "B", "rows computed together" },
                { "memory-limit", "SIZE",
                    "refuse a trace whose estimated peak passes SIZE (4G, 512M; none: no check; default: the "
                    "memory available)" },
                { "logit-ids", "ID,ID", "these output tokens as the targets" },
                { "logit-tokens", "\" A| B\"", "these output tokens (texts split at |) as the targets" },
                { "logit-weights", "W,W", "the named targets' weights (equal unless given)" },
                { "logit-diff", "\" A| B\"", "the logit difference A - B as the one target" },
                { "slug", "S", "the graph's name in its metadata" },
                { "full", "G.csgraph", "also save the unpruned graph, to prune again at any thresholds" }, kJson } },
        { "organism", "tinyworld: the model every new user sees first", {}, {} },
        { "organism build", "corpus, tokenizer and model of tinyworld, resumable", {}, organismBuild },
        { "organism eval", "accuracy on each task and split: {\"tasks\": {TASK: {SPLIT: accuracy}}}", { kModel },
            { { "max-per-split", "N", "at most this many questions a split (0: all)" }, kJson } },
        { "organism corpus", "text of the world MODEL was built from, one line each", { kModel },
            { { "split", "train|heldout", "which part (heldout)" }, { "lines", "N", "lines to write (20,000)" },
                { "out", "FILE", "where to write them" } } },
        { "organism tasks", "paired tasks for neuron-basis circuits: DIR/{agreement,two_hop,sports,addition}.jsonl",
            { kModel },
            { { "out", "DIR", "the folder to write" }, { "items", "N", "paired items a task (100)" }, kJson } },
        { "transcoder", "train, evaluate and describe transcoder sets (circuit-tracer's format)", {}, {} },
        { "transcoder train", "trains a transcoder set (circuit-tracer format), resumable", { kModel },
            transcoderTrain },
        { "transcoder eval", "per-layer NMSE, L0 and dead features, and the replacement model's agreement",
            { kModel, { "TRANSCODER", "a transcoder folder, or the name of a set shipped with MODEL" } },
            { { "corpus", "FILE", "evaluation text, one document a line" },
                { "max-tokens", "N", "at most this many tokens" }, { "seq-len", "T", "tokens a sequence" }, kJson } },
        { "transcoder info", "a transcoder set's shape, hooks and activation",
            { { "TRANSCODER", "a transcoder folder, or MODEL when NAME follows" },
                { "NAME", "the name of a set shipped with MODEL" } },
            { kJson } },
        { "intervene", "edits features and shows how the output changes", { kModel },
            { kText, { "set", "LAYER:POS:FEATURE=VALUE", "set a feature's activation (POS * = every position)", true },
                { "scale", "LAYER:POS:FEATURE=FACTOR", "multiply a feature's activation", true },
                { "add", "LAYER:POS:FEATURE=VALUE", "add to a feature's activation", true }, kTranscoder,
                { "mode", "constrained|free|patch",
                    "constrained (the graph's prediction), free (the model runs on) or patch "
                    "(circuit-tracer's feature_intervention)" },
                { "freeze-attention", "", "patch: attention patterns as in the clean run (the default)" },
                { "no-freeze-attention", "", "patch: attention recomputed" },
                { "constrained-layers", "FIRST:END", "patch: the layers whose MLP outputs stay frozen" },
                { "direct-effects", "", "patch: only the edited features' direct effects" },
                { "generate", "N", "also generate N tokens before and after" },
                { "top-k", "K", "how many of the most likely tokens to show" }, kJson } },
        { "validate", "edits the graph's top nodes one at a time: predicted against actual effects", { kModel },
            { kText, kTranscoder, { "top", "N", "how many nodes, by influence (30)" },
                { "op", "ablate|scale:F", "the edit: ablate (the default) or scale by F (scale:-1 flips)" }, kJson } },
        { "weights", "a feature's global partners by virtual weight, ERA or TWERA, and its weight plots", { kModel },
            { { "feature", "L:F", "the feature (layer:index)" }, kTranscoder,
                { "kind", "virtual|era|twera", "rank by the weights alone (virtual) or weighted by co-activation" },
                { "store", "DB", "the feature store with co-activation statistics (default: the set's)" },
                { "direction", "up|down", "the features it reads (up) or writes to (down, the default)" },
                { "top", "N", "how many partners (20)" },
                { "tokens", "A|B|...", "tokens to plot against: their embeddings' effect and its output's" }, kJson } },
        { "sweep", "operand plots: every feature over a template's grid, ranked by structure", { kModel },
            { { "template", "T", "the prompt with {a} and {b} (and {sum}: a + b), e.g. \"calc: {a}+{b}=\"" },
                { "a", "FIRST..LAST|LIST", "a's values (0..99)" }, { "b", "FIRST..LAST|LIST", "b's values (0..99)" },
                { "position", "P", "the token read (-1: the last; >= 0 from the start)" },
                { "feature", "L:F", "print this feature's grid (repeatable)", true },
                { "rank", "", "rank the features by the structure of their maps" },
                { "top", "N", "how many ranked features (20)" }, { "batch-size", "B", "prompts a batch (256)" },
                { "out", "DIR", "write sweep.json and a PNG heat map per feature (chosen and ranked)" }, kTranscoder,
                kJson } },
        { "neurons", "circuits in the neuron basis (no transcoder): RelP or integrated gradients", {}, {} },
        { "neurons trace",
            "an attribution graph of the model's own units (graph JSON, feature_type \"mlp neuron\" ...): RelP edges",
            { kModel },
            { kText, { "out", "G.json", "the pruned graph JSON to write" },
                { "target", "\" A\"", "the metric: this token's logit (default: the predicted token's)" },
                { "answer", "\" A\"", "with --counterfactual-answer: the metric logit(A) - logit(B)" },
                { "counterfactual-answer", "\" B\"", "the answer it is scored against" },
                { "counterfactual", "P2", "the counterfactual prompt (as many tokens): RelP scores and IG's baseline" },
                { "method", "relp|ig", "how the nodes are chosen: RelP or integrated gradients (relp)" },
                { "node-kind", "neurons|mlp_out|attn_out|resid|features", "the units (neurons); features: `trace`" },
                { "steps", "N", "integrated gradients' path points (32)" },
                { "max-nodes", "N", "units kept as nodes, by |attribution| (1024; -1: all)" },
                { "batch-size", "B", "target rows a backward pass, and IG's points a forward pass (32)" }, kTranscoder,
                kNodeThreshold, kEdgeThreshold, { "slug", "S", "the graph's name in its metadata" },
                { "full", "G.csgraph", "also save the unpruned graph, to prune again at any thresholds" }, kJson } },
        { "neurons intervene",
            "set, scale (0 ablates) or add to the model's own units as it runs: the top tokens before and after",
            { kModel },
            { kText, { "set", "L:POS:UNIT=V", "set a unit (POS * for every position; repeatable)", true },
                { "scale", "L:POS:UNIT=F", "scale a unit (repeatable)", true },
                { "add", "L:POS:UNIT=V", "add to a unit (repeatable)", true },
                { "patch", "L:POS:UNIT", "set a unit to its value on --from's prompt (repeatable)", true },
                { "from", "P2", "the prompt --patch takes values from (as many tokens)" },
                { "node-kind", "neurons|mlp_out|attn_out|resid", "the units (neurons)" },
                { "top-k", "K", "tokens listed (10)" }, kJson } },
        { "neurons curve", "faithfulness and completeness of the top-k circuits of a paired task, against k",
            { kModel },
            { { "task", "FILE.jsonl",
                  "one {\"prompt\", \"answer\", \"counterfactual\", \"counterfactual_answer\"} a line" },
                { "method", "relp|ig", "RelP (one backward pass) or integrated gradients (relp)" },
                { "node-kind", "neurons|mlp_out|attn_out|resid|features",
                    "the units (neurons); features: the transcoder's" },
                { "ks", "10,20,...", "the circuit sizes (10,20,50,100,200,500)" },
                { "edges", "", "edge sets instead: within each item's top --nodes units, by |RelP edge|" },
                { "nodes", "N", "with --edges: the units of each item's node circuit (200)" },
                { "fractions", "F,F,...", "with --edges: the fractions of its edges kept (0.01,...,1)" },
                { "steps", "N", "integrated gradients' path points (32)" },
                { "batch-size", "B", "integrated gradients' points a forward pass (32)" }, kTranscoder, kJson } },
        { "graph", "import, prune, export and describe graph files", {}, {} },
        { "graph import", "reads a graph JSON, checks it, writes it back with every node and link", { kGraphIn },
            { { "out", "OUT", "OUT.json, or OUT.csgraph" }, kJson } },
        { "graph export", "prunes a graph and writes the Neuronpedia / circuit-tracer JSON", { kGraphIn },
            { { "out", "OUT.json", "the graph JSON to write" }, kNodeThreshold, kEdgeThreshold,
                { "all", "", "every node and edge, unpruned" }, kJson } },
        { "graph prune", "prunes a graph: nodes, edges, nodes by kind, scores", { kGraphIn },
            { { "out", "OUT.json", "also write the pruned graph JSON" }, kNodeThreshold, kEdgeThreshold,
                { "all", "", "every node and edge, unpruned" }, kJson } },
        { "graph info", "prompt, nodes by kind, edges, scores, metadata", { kGraphIn }, { kJson } },
        { "features", "build, read, label and export feature stores", {}, {} },
        { "features build", "streams a corpus through the model and transcoders into a feature store; resumable",
            { kModel }, featuresBuild },
        { "features merge", "combines the parts of a --distributed build into one store (as its rank 0 does)",
            { { "PARTS", "the parts, DB.part-R-of-W, one of each rank" } },
            { { "out", "DB", "the store to write" },
                { "model", "MODEL", "the model the parts were built with (default: the folder they recorded)" },
                { "transcoder", "T", "the transcoder set the parts were built with (default: the one they recorded)" },
                kJson },
            true },
        { "features show", "a feature's card: label, frequency, quantiles, examples, logits, inputs",
            { kStore, kFeature }, { kJson } },
        { "features search", "features whose label contains TEXT (case-insensitive)",
            { kStore, { "TEXT", "the text to look for" } }, { { "limit", "N", "at most this many" }, kJson } },
        { "features label", "sets a feature's label (kept across rebuilds; \"\" removes it)", { kStore, kFeature },
            { { "label", "TEXT", "the label" }, { "notes", "TEXT", "free notes" } } },
        { "features info", "model, transcoders, shape, tokens, build state, counts", { kStore }, { kJson } },
        { "features export", "one circuit-tracer JSON per feature", { kStore },
            { { "out", "DIR", "the folder to write" }, { "format", "circuit-tracer", "the files' format" },
                { "layout", "layers|cantor", "DIR/LAYER/FEATURE.json or DIR/INDEX.json" } } },
    };
}

// Every option name any command declares, and which commands: to say where a stray one belongs.
std::string commandsWith(const std::vector<CommandSpec>& specs, const std::string& name)
{
    std::string out;
    for (const CommandSpec& c : specs)
        for (const OptionSpec& o : c.options)
            if (name == o.name)
                out += std::string(out.empty() ? "" : ", ") + c.path;
    return out;
}

// The options given before the command's name: only --device.
void takeLeadingDevice(std::vector<std::string>& words, std::vector<std::string>& devices)
{
    while (!words.empty() && words.front().rfind("--", 0) == 0) {
        const std::string& w = words.front();
        if (w.rfind("--device=", 0) == 0) {
            devices.push_back(w.substr(9));
            words.erase(words.begin());
        } else if (w == "--device") {
            if (words.size() < 2)
                throw Error("option --device needs a value");
            devices.push_back(words[1]);
            words.erase(words.begin(), words.begin() + 2);
        } else {
            throw Error("unknown option " + w.substr(0, w.find('=')) + " before a command (try --help)");
        }
    }
}

} // namespace

std::optional<Args> parseCommandLine(int argc, const char* const* argv)
{
    const std::vector<CommandSpec> specs = commands();
    std::vector<std::string> words(argv + 1, argv + argc);
    std::vector<std::string> devices;
    takeLeadingDevice(words, devices);
    if (words.empty())
        throw Error("no command given (try --help)");

    // The command is found by its words first, and only its own options are declared to CLI11:
    // a later word that names another command is then an argument, never a switch of command.
    auto find = [&](const std::string& path) -> const CommandSpec* {
        for (const CommandSpec& c : specs)
            if (path == c.path)
                return &c;
        return nullptr;
    };
    const CommandSpec* spec = find(words.front());
    if (!spec)
        throw Error("unknown command \"" + words.front() + "\" (try --help)");
    std::vector<std::string> positional { words.front() };
    words.erase(words.begin());
    const bool group = spec->positionals.empty() && spec->options.empty();
    if (group) {
        const CommandSpec* sub = words.empty() ? nullptr : find(std::string(spec->path) + " " + words.front());
        if (!sub) {
            // No subcommand: the command says which it has; --help lists them.
            if (!words.empty() && (words.front() == "--help" || words.front() == "-h")) {
                std::cout << spec->help << "\n\nsubcommands (each with --help):\n";
                for (const CommandSpec& c : specs)
                    if (std::string(c.path).rfind(std::string(spec->path) + " ", 0) == 0)
                        std::cout << "  " << c.path << "\n      " << c.help << "\n";
                return std::nullopt;
            }
            for (const std::string& w : words)
                if (w.rfind("--", 0) == 0)
                    throw Error("unknown option " + w + " for " + spec->path + " (give a subcommand first)");
            positional.insert(positional.end(), words.begin(), words.end());
            std::map<std::string, std::vector<std::string>> values;
            if (!devices.empty())
                values["device"] = devices;
            return Args(std::move(positional), std::move(values), {});
        }
        spec = sub;
        positional.push_back(words.front());
        words.erase(words.begin());
    }

    const std::string path = spec->path;
    CLI::App app(spec->help, "circuitscope-cli " + path);
    app.allow_extras(); // collected below, for messages that say what went wrong
    CLI::Option* device = app.add_option("--device", "cpu, cuda, cuda:N or auto (auto)")
                              ->type_name("DEVICE")
                              ->expected(1)
                              ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    std::vector<CLI::Option*> positionals;
    for (const auto& [name, help] : spec->positionals) {
        const bool many = spec->lastRepeats && name == spec->positionals.back().first;
        positionals.push_back(app.add_option(name, help)->expected(1, many ? 1 << 20 : 1)->allow_extra_args(many));
    }
    std::vector<std::pair<const OptionSpec*, CLI::Option*>> options;
    for (const OptionSpec& o : spec->options) {
        const std::string flagName = std::string("--") + o.name;
        CLI::Option* opt = *o.value ? app.add_option(flagName, o.help)
                                          ->type_name(o.value)
                                          ->expected(1)
                                          ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
                                    : app.add_flag(flagName, o.help);
        options.emplace_back(&o, opt);
    }

    // "--name=" gives the empty value, as "--name ''" does (CLI11 would take the next word).
    std::vector<std::string> given;
    for (const std::string& w : words) {
        if (w.size() > 3 && w.rfind("--", 0) == 0 && w.back() == '=' && w.find('=') == w.size() - 1) {
            given.push_back(w.substr(0, w.size() - 1));
            given.emplace_back();
        } else {
            given.push_back(w);
        }
    }
    std::vector<std::string> reversed(given.rbegin(), given.rend()); // CLI11 takes them last first
    try {
        app.parse(reversed);
    } catch (const CLI::CallForHelp& e) {
        app.exit(e);
        return std::nullopt;
    } catch (const CLI::ArgumentMismatch& e) {
        // "--top-k: 1 required TEXT missing"
        const std::string what = e.what();
        const auto colon = what.find(':');
        if (what.rfind("--", 0) == 0 && colon != std::string::npos)
            throw Error("option " + what.substr(0, colon) + " needs a value");
        throw Error(what);
    } catch (const CLI::ParseError& e) {
        throw Error(e.what());
    }

    std::map<std::string, std::vector<std::string>> values;
    std::set<std::string> flags;
    for (const std::string& v : device->results())
        devices.push_back(v);
    if (!devices.empty())
        values["device"] = devices;
    for (CLI::Option* p : positionals)
        for (const std::string& v : p->results())
            positional.push_back(v);
    for (const auto& [o, opt] : options) {
        if (opt->count() == 0)
            continue;
        if (*o->value)
            values[o->name] = opt->results();
        else
            flags.insert(o->name);
    }
    // What CLI11 left over: an option of another command, or a word too many.
    for (const std::string& extra : app.remaining()) {
        if (extra.rfind("--", 0) == 0) {
            const std::string name
                = extra.substr(2, extra.find('=') == std::string::npos ? std::string::npos : extra.find('=') - 2);
            const std::string where = commandsWith(specs, name);
            throw Error("unknown option --" + name + " for " + path
                + (where.empty() ? "" : " (an option of " + where + ")") + "; try circuitscope-cli " + path
                + " --help");
        }
        throw Error(
            "unexpected argument \"" + extra + "\" for " + path + " (try circuitscope-cli " + path + " --help)");
    }
    return Args(std::move(positional), std::move(values), std::move(flags));
}

} // namespace cs::cli
