// The student network: STFT front end of both ears -> projection -> causal LSTM encoder, plus a predictor
// head for the teacher's features (pretraining) and a DoA classification head (fine-tuning).
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "io/config.h"

namespace bsim {

// Azimuth classes (frontal covers [-90, 90), full covers [-180, 180); both in model.doa_resolution_deg steps)
// and how a clip's frame logits become one azimuth (model.doa_pooling, model.doa_estimate).
struct DoaGrid {
  enum class Estimate { class_centre, parabolic, local_mean };  // model.doa_estimate
  bool full = false;
  double resolution_deg = 5.0;
  int n_classes = 36;
  Estimate estimate = Estimate::class_centre;
  bool last_frame = false;  // model.doa_pooling = last
  explicit DoaGrid(const ModelConfig& m);
  int class_of(double azimuth_deg) const;
  double centre_deg(int c) const;
  // One clip's azimuth from its n_classes scores (logits; any constant offset): the centre of the first
  // highest class, moved within that class towards the higher neighbour by model.doa_estimate. The full grid's
  // classes are circular; on the frontal grid the two end classes keep their centres (one neighbour only).
  double azimuth_deg(const float* scores) const;
  // [B, frames, n_classes] frame logits -> [B, n_classes] clip scores, pooled by model.doa_pooling.
  torch::Tensor clip_scores(const torch::Tensor& frame_logits) const;
};

// One causal Conformer block (Gulati et al. 2020) for streaming use: half-step feed-forward, self-attention
// with a causal mask, causal depthwise convolution (left padding, LayerNorm instead of BatchNorm),
// half-step feed-forward, LayerNorm.
class ConformerBlockImpl : public torch::nn::Module {
 public:
  ConformerBlockImpl(int width, int heads, int kernel);
  torch::Tensor forward(const torch::Tensor& x);  // [B, T, width]

 private:
  torch::nn::Sequential ff1{nullptr}, ff2{nullptr};
  torch::nn::LayerNorm attn_norm{nullptr}, conv_norm{nullptr}, conv_inner_norm{nullptr}, out_norm{nullptr};
  torch::nn::MultiheadAttention attn{nullptr};
  torch::nn::Conv1d pointwise_in{nullptr}, depthwise{nullptr}, pointwise_out{nullptr};
  int kernel_;
};
TORCH_MODULE(ConformerBlock);

class SpatialNetImpl : public torch::nn::Module {
 public:
  SpatialNetImpl(const ModelConfig& model, const FeatureConfig& stft, int n_teacher_features, int n_doa_classes);

  // [B, 2, T] audio -> [B, frames, 4 * bins]: log power of each ear (relative to the frame's mean, / 10),
  // cos and sin of the interaural phase
  // difference (the two ears' STFT as log magnitude and relative phase). Frames follow the
  // teacher's STFT exactly (no centring, periodic Hann, zero-padded to n_fft).
  torch::Tensor front_end(const torch::Tensor& audio);
  torch::Tensor encode(const torch::Tensor& audio);             // -> [B, frames, width]
  torch::Tensor predict_teacher(const torch::Tensor& encoded);  // -> [B, frames, n_teacher_features]
  torch::Tensor doa_logits(const torch::Tensor& encoded);       // -> [B, frames, n_classes]

  // Parameters of the encoder alone (front-end projection, norm, LSTM), named as in encoder.pt.
  std::vector<std::pair<std::string, torch::Tensor>> encoder_parameters();

  torch::nn::Linear proj{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::LSTM lstm{nullptr};                // model.encoder = lstm
  torch::nn::ModuleList conformer{nullptr};     // model.encoder = conformer
  torch::nn::Linear predictor_hidden{nullptr}, predictor_out{nullptr};
  torch::nn::Linear doa{nullptr};

 private:
  FeatureConfig stft_;
  torch::Tensor window_;
};
TORCH_MODULE(SpatialNet);

// encoder.pt: the encoder's parameters as a plain {name: tensor} dict in torch.save's zip format, readable
// by Python's torch.load (weights_only=True) as a state dict.
void save_encoder_state_dict(SpatialNet& net, const std::string& path);
// Loads encoder.pt into `net`; InputError naming the file and the first mismatching parameter.
void load_encoder_state_dict(SpatialNet& net, const std::string& path);

}  // namespace bsim
