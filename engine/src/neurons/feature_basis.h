#pragma once
// Transcoder features as the nodes of neuron-basis circuits (CurveOptions::transcoders): the same
// three operations evaluateCircuits asks of the model's own units, on the replacement model of
// each prompt (cs/replacement.h) with its error terms held at the prompt's values.

#include "cs/neurons.h"

#include <memory>

namespace cs::transcoder {
class TranscoderSet;
}

namespace cs::neurons::detail {

using Model = std::shared_ptr<const model::Model>;
using Transcoders = std::shared_ptr<const transcoder::TranscoderSet>;

// Per layer [n_pos, n_features]: the features' activations on a prompt (0 at a held BOS).
std::vector<at::Tensor> featureValues(const Model& model, const Transcoders& set, const std::vector<int64_t>& ids);
// RelP: the frozen replacement model (attention patterns and norm denominators held, every
// layer's features recomputed from its own input, so the run is linear in them up to the
// encoders' biases), the score a feature's activation (minus the counterfactual's) times the
// gradient there. Integrated gradients: layer by layer, that layer's activations moved from the
// baseline (the counterfactual's, or zero) to the prompt's with the free replacement model
// running (attention live, later layers re-encoded).
Attribution featureAttribution(const Model& model, const Transcoders& set, const std::vector<int64_t>& ids,
    const Metric& metric, const AttributionOptions& options);
// As meanValues, over the features.
std::vector<at::Tensor> featureMeans(
    const Model& model, const Transcoders& set, const std::vector<std::vector<int64_t>>& prompts, bool byPosition);
// The metric of the free replacement model (errors held at the prompt's) with every feature
// where keep is false set to its mean.
double featureAblatedMetric(const Model& model, const Transcoders& set, const std::vector<int64_t>& ids,
    const Metric& metric, const std::vector<at::Tensor>& means, const std::vector<at::Tensor>& keep);

} // namespace cs::neurons::detail
