// SpatialNet and the encoder state-dict files.
#include "train/model.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/pickle.h>
#include <torch/csrc/jit/serialization/pickler.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <fstream>
#include <iterator>

#include "io/error.h"

namespace bsim {

DoaGrid::DoaGrid(const ModelConfig& m) : full(m.doa_grid == "full"), resolution_deg(m.doa_resolution_deg) {
  n_classes = int(std::lround((full ? 360.0 : 180.0) / resolution_deg));
  estimate = m.doa_estimate == "parabolic"    ? Estimate::parabolic
             : m.doa_estimate == "local_mean" ? Estimate::local_mean
                                              : Estimate::class_centre;
  last_frame = m.doa_pooling == "last";
}

torch::Tensor DoaGrid::clip_scores(const torch::Tensor& frame_logits) const {
  return last_frame ? frame_logits.select(1, -1) : frame_logits.mean(1);
}

int DoaGrid::class_of(double az) const {
  if (full) {
    double a = std::fmod(az + 180.0, 360.0);
    if (a < 0) a += 360.0;
    return std::min(n_classes - 1, int(a / resolution_deg));
  }
  return std::clamp(int(std::floor((az + 90.0) / resolution_deg)), 0, n_classes - 1);
}

double DoaGrid::centre_deg(int c) const { return (full ? -180.0 : -90.0) + (c + 0.5) * resolution_deg; }

double DoaGrid::azimuth_deg(const float* s) const {
  int c = 0;
  for (int k = 1; k < n_classes; ++k)
    if (s[k] > s[c]) c = k;  // the first maximum, as torch's argmax
  const bool edge = !full && (c == 0 || c == n_classes - 1);
  if (estimate == Estimate::class_centre || edge || n_classes < 3) return centre_deg(c);
  const double lo = s[(c + n_classes - 1) % n_classes], mid = s[c], hi = s[(c + 1) % n_classes];
  double shift = 0;  // in classes, within [-0.5, 0.5] since mid is the maximum
  if (estimate == Estimate::parabolic) {
    const double curvature = lo - 2 * mid + hi;  // <= 0
    if (curvature < 0) shift = 0.5 * (lo - hi) / curvature;
  } else {  // local_mean: softmax weights relative to the winner
    const double p_lo = std::exp(lo - mid), p_hi = std::exp(hi - mid);
    shift = (p_hi - p_lo) / (p_lo + 1 + p_hi);
  }
  double az = centre_deg(c) + std::clamp(shift, -0.5, 0.5) * resolution_deg;
  if (full && az >= 180.0) az -= 360.0;
  if (full && az < -180.0) az += 360.0;
  return az;
}

ConformerBlockImpl::ConformerBlockImpl(int width, int heads, int kernel) : kernel_(kernel) {
  auto ff = [&] {
    return torch::nn::Sequential(torch::nn::LayerNorm(torch::nn::LayerNormOptions({width})),
                                 torch::nn::Linear(width, 4 * width), torch::nn::SiLU(),
                                 torch::nn::Linear(4 * width, width));
  };
  ff1 = register_module("ff1", ff());
  ff2 = register_module("ff2", ff());
  attn_norm = register_module("attn_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width})));
  attn = register_module("attn", torch::nn::MultiheadAttention(torch::nn::MultiheadAttentionOptions(width, heads)));
  conv_norm = register_module("conv_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width})));
  pointwise_in = register_module("pointwise_in", torch::nn::Conv1d(torch::nn::Conv1dOptions(width, 2 * width, 1)));
  depthwise = register_module("depthwise", torch::nn::Conv1d(torch::nn::Conv1dOptions(width, width, kernel).groups(width)));
  conv_inner_norm = register_module("conv_inner_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width})));
  pointwise_out = register_module("pointwise_out", torch::nn::Conv1d(torch::nn::Conv1dOptions(width, width, 1)));
  out_norm = register_module("out_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width})));
}

torch::Tensor ConformerBlockImpl::forward(const torch::Tensor& x_in) {
  auto x = x_in + 0.5 * ff1->forward(x_in);
  // Self-attention over past frames only: -inf above the diagonal. MultiheadAttention wants [T, B, width].
  const int64_t T = x.size(1);
  auto mask = torch::full({T, T}, -std::numeric_limits<float>::infinity(), x.options()).triu(1);
  auto h = attn_norm(x).transpose(0, 1);
  auto a = std::get<0>(attn->forward(h, h, h, /*key_padding_mask=*/{}, /*need_weights=*/false, mask));
  x = x + a.transpose(0, 1);
  // Convolution module, causal: pad kernel-1 frames on the left only.
  auto c = pointwise_in(conv_norm(x).transpose(1, 2));                  // [B, 2W, T]
  c = torch::glu(c, 1);                                                 // [B, W, T]
  c = depthwise(torch::constant_pad_nd(c, {kernel_ - 1, 0}));           // [B, W, T]
  c = torch::silu(conv_inner_norm(c.transpose(1, 2))).transpose(1, 2);
  x = x + pointwise_out(c).transpose(1, 2);
  x = x + 0.5 * ff2->forward(x);
  return out_norm(x);
}

SpatialNetImpl::SpatialNetImpl(const ModelConfig& m, const FeatureConfig& stft, int n_teacher, int n_classes)
    : stft_(stft) {
  const int bins = stft.n_fft / 2 + 1;
  proj = register_module("proj", torch::nn::Linear(4 * bins, m.width));
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({m.width})));
  // Both encoders are causal: every output frame depends on the past only.
  if (m.encoder == "conformer") {
    conformer = register_module("conformer", torch::nn::ModuleList());
    for (int i = 0; i < m.layers; ++i) conformer->push_back(ConformerBlock(m.width, m.heads, m.conv_kernel));
  } else {
    lstm = register_module("lstm", torch::nn::LSTM(torch::nn::LSTMOptions(m.width, m.width).num_layers(m.layers).batch_first(true)));
  }
  predictor_hidden = register_module("predictor_hidden", torch::nn::Linear(m.width, m.width));
  predictor_out = register_module("predictor_out", torch::nn::Linear(m.width, std::max(1, n_teacher)));
  doa = register_module("doa", torch::nn::Linear(m.width, n_classes));
  window_ = register_buffer("window", torch::hann_window(stft.win_length, torch::TensorOptions().dtype(torch::kFloat32)));
}

torch::Tensor SpatialNetImpl::front_end(const torch::Tensor& audio) {
  // audio [B, 2, T] -> frames [B, 2, F, win] -> rfft(n_fft) [B, 2, F, bins]
  auto frames = audio.unfold(2, stft_.win_length, stft_.hop_length) * window_;
  auto X = torch::fft::rfft(frames, stft_.n_fft, -1);
  auto power = torch::log(X.abs().pow(2) + 1e-8);                 // [B, 2, F, bins]
  // Level-free and causal: relative to the frame's mean over both ears and all bins (keeps ILD and spectral
  // shape), scaled to the range of the phase terms. Without it the raw log power swamps the projection and
  // training stalls (measured: MSE 0.98 vs 0.35 after 300 tiny steps).
  power = (power - power.mean({1, 3}, true)) / 10.0;
  // Interaural phase as cos/sin of angle(X_L conj X_R): absolute phase carries no spatial information,
  // and a linear layer cannot form the product of the two ears' phasors itself.
  auto ipd = torch::angle(X.select(1, 0) * X.select(1, 1).conj()).unsqueeze(1);
  auto f = torch::cat({power, torch::cos(ipd), torch::sin(ipd)}, 1);  // [B, 4, F, bins]
  return f.permute({0, 2, 1, 3}).flatten(2);                           // [B, F, 4 * bins]
}

torch::Tensor SpatialNetImpl::encode(const torch::Tensor& audio) {
  auto h = torch::relu(norm(proj(front_end(audio))));
  if (lstm) return std::get<0>(lstm(h));
  for (auto& block : *conformer) h = block->as<ConformerBlock>()->forward(h);
  return h;
}

torch::Tensor SpatialNetImpl::predict_teacher(const torch::Tensor& e) { return predictor_out(torch::relu(predictor_hidden(e))); }

torch::Tensor SpatialNetImpl::doa_logits(const torch::Tensor& e) { return doa(e); }

std::vector<std::pair<std::string, torch::Tensor>> SpatialNetImpl::encoder_parameters() {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : named_parameters())
    if (p.key().rfind("proj.", 0) == 0 || p.key().rfind("norm.", 0) == 0 || p.key().rfind("lstm.", 0) == 0 ||
        p.key().rfind("conformer.", 0) == 0)
      out.emplace_back(p.key(), p.value());
  return out;
}

void save_encoder_state_dict(SpatialNet& net, const std::string& path) {
  c10::Dict<std::string, at::Tensor> dict;
  for (auto& [name, t] : net->encoder_parameters()) dict.insert(name, t.detach().to(torch::kCPU).contiguous());
  // As torch::pickle_save, but without type tags on the dict: Python's weights-only unpickler rejects them.
  std::vector<char> pickled;
  torch::jit::Pickler pickler([&](const char* b, size_t n) { pickled.insert(pickled.end(), b, b + n); }, nullptr,
                              nullptr, nullptr, nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(c10::IValue(dict));
  pickler.stop();
  std::ofstream out(path, std::ios::binary);
  if (!out) throw InputError("cannot write '" + path + "'");
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* b, size_t n) {
    out.write(static_cast<const char*>(b), std::streamsize(n));
    return n;
  });
  torch::jit::writeArchiveAndTensors("data", pickled.data(), pickled.size(), pickler.tensorData(), writer);
  writer.writeEndOfFile();
  if (!out) throw RuntimeError("short write to '" + path + "'");
}

void load_encoder_state_dict(SpatialNet& net, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("checkpoint '" + path + "' does not exist or cannot be read");
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  c10::IValue v;
  try {
    v = torch::jit::pickle_load(bytes);
  } catch (const c10::Error&) {
    throw InputError("checkpoint '" + path + "' is not a bsim encoder.pt (not a torch.save zip of a dict)");
  }
  if (!v.isGenericDict()) throw InputError("checkpoint '" + path + "' does not hold a state dict");
  auto dict = v.toGenericDict();
  torch::NoGradGuard no_grad;
  for (auto& [name, param] : net->encoder_parameters()) {
    if (!dict.contains(name)) throw InputError("checkpoint '" + path + "' lacks parameter '" + name + "'");
    const at::Tensor t = dict.at(name).toTensor();
    if (t.sizes() != param.sizes()) {
      std::ostringstream os;
      os << "checkpoint '" << path << "': parameter '" << name << "' has shape " << t.sizes()
         << " but the model expects " << param.sizes() << ": use the pretraining run's model.* settings";
      throw InputError(os.str());
    }
    param.copy_(t.to(param.device()));
  }
}

}  // namespace bsim
