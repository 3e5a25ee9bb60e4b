#include "train/training.h"

#include "cs/error.h"
#include "cs/safetensors.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <cstdio>
#include <unistd.h>

namespace cs::train {

AdamW::AdamW(std::map<std::string, at::Tensor> params, Options options, std::set<std::string> noDecay)
    : m_params(std::move(params))
    , m_options(options)
    , m_noDecay(std::move(noDecay))
{
    for (const auto& [name, p] : m_params) {
        m_m[name] = at::zeros_like(p).detach();
        m_v[name] = at::zeros_like(p).detach();
    }
}

void AdamW::step(double lr)
{
    at::NoGradGuard noGrad;
    ++m_steps;
    const double b1 = m_options.beta1, b2 = m_options.beta2;
    const double correction1 = 1.0 - std::pow(b1, static_cast<double>(m_steps));
    const double correction2 = 1.0 - std::pow(b2, static_cast<double>(m_steps));
    for (auto& [name, p] : m_params) {
        const at::Tensor& g = p.grad();
        if (!g.defined())
            continue;
        at::Tensor& m = m_m[name];
        at::Tensor& v = m_v[name];
        m.mul_(b1).add_(g, 1.0 - b1);
        v.mul_(b2).addcmul_(g, g, 1.0 - b2);
        if (m_options.weightDecay > 0 && !m_noDecay.count(name))
            p.mul_(1.0 - lr * m_options.weightDecay);
        at::Tensor denom = (v / correction2).sqrt_().add_(m_options.eps);
        p.addcdiv_(m, denom, -lr / correction1);
    }
}

void AdamW::zeroGrad()
{
    for (auto& [name, p] : m_params) {
        at::Tensor g = p.mutable_grad();
        if (g.defined())
            g.zero_();
    }
}

void AdamW::saveState(io::SafetensorsWriter& writer) const
{
    for (const auto& [name, t] : moments())
        writer.add(name, t);
    writer.setMetadata("adam.steps", std::to_string(m_steps));
}

std::map<std::string, at::Tensor> AdamW::moments() const
{
    std::map<std::string, at::Tensor> out;
    for (const auto& [name, m] : m_m)
        out["adam.m." + name] = m;
    for (const auto& [name, v] : m_v)
        out["adam.v." + name] = v;
    return out;
}

void AdamW::loadState(const io::SafetensorsFile& file)
{
    at::NoGradGuard noGrad;
    for (auto& [name, m] : m_m) {
        if (!file.contains("adam.m." + name) || !file.contains("adam.v." + name))
            throw Error(file.path() + " has no optimizer state for \"" + name + "\"");
        m.copy_(file.tensor("adam.m." + name));
        m_v[name].copy_(file.tensor("adam.v." + name));
    }
    auto it = file.metadata().find("adam.steps");
    if (it == file.metadata().end())
        throw Error(file.path() + " has no adam.steps");
    m_steps = std::stoll(it->second);
}

double gradSquares(const at::Tensor& param)
{
    at::NoGradGuard noGrad;
    return param.grad().defined() ? param.grad().pow(2).sum().item<double>() : 0.0;
}

void clipGradsTo(const std::map<std::string, at::Tensor>& params, double norm, double maxNorm)
{
    at::NoGradGuard noGrad;
    if (norm > maxNorm && norm > 0)
        for (const auto& [name, p] : params)
            if (p.grad().defined())
                p.mutable_grad().mul_(maxNorm / norm);
}

double clipGradNorm(const std::map<std::string, at::Tensor>& params, double maxNorm)
{
    double total = 0;
    for (const auto& [name, p] : params)
        total += gradSquares(p);
    const double norm = std::sqrt(total);
    clipGradsTo(params, norm, maxNorm);
    return norm;
}

double warmupCosine(int64_t step, int64_t warmup, int64_t total, double peak, double floorFraction)
{
    if (step < warmup)
        return peak * static_cast<double>(step + 1) / static_cast<double>(warmup);
    const double span = static_cast<double>(std::max<int64_t>(1, total - warmup));
    const double t = std::min(1.0, static_cast<double>(step - warmup) / span);
    const double cosine = 0.5 * (1.0 + std::cos(M_PI * t));
    return peak * (floorFraction + (1.0 - floorFraction) * cosine);
}

std::string formatDuration(double seconds)
{
    if (!std::isfinite(seconds) || seconds < 0)
        return "?";
    const int64_t s = static_cast<int64_t>(seconds + 0.5);
    char buf[32];
    if (s >= 3600)
        std::snprintf(
            buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600), static_cast<long long>((s % 3600) / 60));
    else if (s >= 60)
        std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
    else
        std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
    return buf;
}

ProgressBar::ProgressBar(std::string label, int64_t total, int64_t startAt)
    : m_label(std::move(label))
    , m_total(std::max<int64_t>(total, 1))
    , m_startAt(startAt)
    , m_tty(::isatty(STDERR_FILENO) != 0)
    , m_start(std::chrono::steady_clock::now())
    , m_lastDraw(m_start - std::chrono::hours(1))
{
}

void ProgressBar::update(int64_t done, const std::string& stats)
{
    const auto now = std::chrono::steady_clock::now();
    const double since = std::chrono::duration<double>(now - m_lastDraw).count();
    if (since < (m_tty ? 0.2 : 10.0))
        return;
    m_lastDraw = now;
    draw(done, stats, false);
}

void ProgressBar::finish(const std::string& stats)
{
    draw(m_total, stats, true);
}

void ProgressBar::draw(int64_t done, const std::string& stats, bool final)
{
    const double fraction = std::clamp(static_cast<double>(done) / static_cast<double>(m_total), 0.0, 1.0);
    const int width = 24, filled = static_cast<int>(fraction * width);
    std::string bar(static_cast<size_t>(filled), '#');
    bar += std::string(static_cast<size_t>(width - filled), '.');
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - m_start).count();
    const double rate = static_cast<double>(done - m_startAt) / std::max(elapsed, 1e-9);
    const double left = rate > 0 ? static_cast<double>(m_total - done) / rate : NAN;
    std::fprintf(stderr, "%s%s [%s] %3d%% %lld/%lld %s | %s %s%s", m_tty ? "\r\033[K" : "", m_label.c_str(),
        bar.c_str(), static_cast<int>(fraction * 100), static_cast<long long>(done), static_cast<long long>(m_total),
        stats.c_str(), final ? "took" : "left", formatDuration(final ? elapsed : left).c_str(),
        (final || !m_tty) ? "\n" : "");
    std::fflush(stderr);
}

} // namespace cs::train
