#pragma once
// Pieces every trainer in Circuitscope shares (the language model of tinyworld, transcoders):
// AdamW with state that checkpoints, gradient clipping, the warm-up + cosine schedule, and
// a progress bar for the terminal.

#include <ATen/core/Tensor.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace cs::io {
class SafetensorsWriter;
class SafetensorsFile;
} // namespace cs::io

namespace cs::train {

// AdamW (Loshchilov & Hutter, 2019): Adam moments with bias correction and weight decay
// applied to the parameter directly, not through the gradient.
class AdamW {
public:
    struct Options {
        double beta1 = 0.9;
        double beta2 = 0.95;
        double eps = 1e-8;
        double weightDecay = 0.0;
    };
    // params: named tensors with requires_grad; names in noDecay get no weight decay.
    AdamW(std::map<std::string, at::Tensor> params, Options options, std::set<std::string> noDecay = {});

    void step(double lr); // one update from each parameter's .grad()
    void zeroGrad();
    int64_t steps() const { return m_steps; }
    const std::map<std::string, at::Tensor>& params() const { return m_params; }

    // Moments as "adam.m.<name>" / "adam.v.<name>" tensors and the step count as metadata.
    void saveState(io::SafetensorsWriter& writer) const;
    void loadState(const io::SafetensorsFile& file);
    // The moments themselves under the names saveState gives them, to write or to fill in place
    // (a trainer whose parameters are slices of larger ones saves and loads them its own way).
    std::map<std::string, at::Tensor> moments() const;
    void setSteps(int64_t steps) { m_steps = steps; }

private:
    std::map<std::string, at::Tensor> m_params, m_m, m_v;
    Options m_options;
    std::set<std::string> m_noDecay;
    int64_t m_steps = 0;
};

// Scales all gradients so their joint L2 norm is at most maxNorm; returns the norm before.
double clipGradNorm(const std::map<std::string, at::Tensor>& params, double maxNorm);
// Its two halves, for gradients spread over processes: the sum of squares of one gradient (0
// when it has none), and every gradient scaled so that a joint norm `norm` becomes at most maxNorm.
double gradSquares(const at::Tensor& param);
void clipGradsTo(const std::map<std::string, at::Tensor>& params, double norm, double maxNorm);

// Linear warm-up to `peak` over `warmup` steps, then cosine decay to peak * floorFraction.
double warmupCosine(int64_t step, int64_t warmup, int64_t total, double peak, double floorFraction);

// "[#####.....] 45% 450/1000 loss 2.31 | 12.3k tok/s | 3m12s left" on stderr, redrawn in
// place on a terminal, a line every few seconds otherwise (CI logs).
class ProgressBar {
public:
    ProgressBar(std::string label, int64_t total, int64_t startAt = 0);
    void update(int64_t done, const std::string& stats);
    void finish(const std::string& stats);

private:
    void draw(int64_t done, const std::string& stats, bool final);
    std::string m_label;
    int64_t m_total, m_startAt;
    bool m_tty;
    std::chrono::steady_clock::time_point m_start, m_lastDraw;
};

// "1h02m", "3m12s", "42s"
std::string formatDuration(double seconds);

} // namespace cs::train
