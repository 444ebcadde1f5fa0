// Training and evaluation loops.
#include "train/trainer.h"

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <optional>
#include <set>
#include <sstream>

#include "io/error.h"
#include "io/launch.h"
#include "io/progress.h"
#include "io/shard.h"
#include "kernels/device.h"
#include "sim/features.h"
#include "sim/generate.h"
#include "sim/scene.h"
#include "train/batch_source.h"
#include "train/data_parallel.h"
#include "train/model.h"

#if BSIM_HAVE_CUDA
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace fs = std::filesystem;

namespace bsim {
namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

// train.device; on CUDA the launcher's local rank picks the GPU as for `bsim generate --device cuda` (ranks of one
// machine take its GPUs in turn), which becomes the current device of libtorch and of the CUDA pipeline alike.
torch::Device pick_device(const std::string& want) {
  if (want == "cpu") return torch::kCPU;
  if (want == "cuda" && !torch::cuda::is_available())
    throw InputError("train.device=cuda but no CUDA device is visible: use cpu or auto");
  if (!torch::cuda::is_available()) return torch::kCPU;
  const int index = cuda::cuda_device_index("cuda", std::max<int>(1, torch::cuda::device_count()));
#if BSIM_HAVE_CUDA
  c10::cuda::set_device(c10::DeviceIndex(index));
  cuda::use_device(index);
#endif
  return torch::Device(torch::kCUDA, c10::DeviceIndex(index));
}

// The stream the step's kernels are queued on (device batches order themselves against it).
void* cuda_stream(const torch::Device& d) {
#if BSIM_HAVE_CUDA
  return c10::cuda::getCurrentCUDAStream(d.has_index() ? d.index() : -1).stream();
#else
  (void)d;
  throw RuntimeError("device batches need a build with CUDA");
#endif
}

// A tensor over a batch in device memory: no copy (the batch stays valid until it is released).
torch::Tensor device_tensor(const float* p, c10::IntArrayRef sizes, const torch::Device& d) {
  const torch::Device at(torch::kCUDA, d.has_index() ? d.index() : 0);
  return torch::from_blob(const_cast<float*>(p), sizes, torch::TensorOptions().dtype(torch::kFloat32).device(at));
}

// On-the-fly batches: the CUDA pipeline when training on a GPU (train.simulator auto|cuda), else the CPU.
std::unique_ptr<BatchSource> on_the_fly(const Config& cfg, const torch::Device& device, long long first, long long pool,
                                        BatchShare share = {}) {
  const std::string& sim = cfg.train.simulator;
  if (sim == "cuda" && !device.is_cuda())
    throw InputError("train.simulator=cuda needs train.device=cuda (the batches stay in GPU memory)");
  const bool gpu = sim == "cuda" || (sim == "auto" && device.is_cuda() && BSIM_HAVE_CUDA);
  return gpu ? make_device_source(cfg, first, pool, share) : make_on_the_fly_source(cfg, first, pool, share);
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_text_atomic(const fs::path& p, const std::string& text) {
  const fs::path tmp = p.string() + ".tmp";
  {
    std::ofstream out(tmp);
    if (!out) throw InputError("cannot write '" + tmp.string() + "'");
    out << text;
  }
  fs::rename(tmp, p);
}

int teacher_features_of(const Config& cfg) {
  return teacher_shape(cfg.features, int(std::lround(cfg.clip_s * cfg.sample_rate_hz))).n_features;
}

SpatialNet make_net(const Config& cfg) {
  return SpatialNet(cfg.model, cfg.features, teacher_features_of(cfg), DoaGrid(cfg.model).n_classes);
}

// Writes folder `dst` through `dst`.tmp, so that a crash mid-save never leaves a half-written folder in
// place of the last good one.
template <typename Fill>
void replace_folder(const fs::path& dst, Fill fill) {
  const fs::path tmp = dst.string() + ".tmp";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  fill(tmp);
  fs::remove_all(dst);
  fs::rename(tmp, dst);
}
// Saves model + optimiser + step into checkpoint/.
void save_checkpoint(const fs::path& run, SpatialNet& net, torch::optim::Optimizer& opt, long long step, Task task) {
  replace_folder(run / "checkpoint", [&](const fs::path& tmp) {
    torch::save(net, (tmp / "model.pt").string());
    torch::save(opt, (tmp / "optimizer.pt").string());
    std::ofstream(tmp / "state.yaml") << "step: " << step << "\ntask: " << (task == Task::pretrain ? "pretrain" : "finetune")
                                      << "\n";
  });
  save_encoder_state_dict(net, (run / "encoder.pt").string());
}

long long load_checkpoint(const fs::path& run, SpatialNet& net, torch::optim::Optimizer& opt) {
  const fs::path dir = run / "checkpoint";
  if (!fs::exists(dir / "state.yaml"))
    throw InputError("nothing to resume in '" + run.string() + "': no checkpoint/ (run without --resume)");
  try {
    torch::load(net, (dir / "model.pt").string());
    torch::load(opt, (dir / "optimizer.pt").string());
  } catch (const c10::Error& e) {
    std::string what = e.what_without_backtrace();
    throw InputError("checkpoint in '" + dir.string() + "' does not match this model/config: " + what.substr(0, what.find('\n')));
  }
  std::istringstream in(read_text(dir / "state.yaml"));
  std::string key;
  long long step = -1;
  in >> key >> step;
  if (key != "step:" || step < 0) throw InputError("checkpoint state '" + (dir / "state.yaml").string() + "' is corrupt");
  return step;
}

// Keeps the log rows up to `step` (a resumed run rewrites what came after its checkpoint).
void truncate_log(const fs::path& log, long long step) {
  if (!fs::exists(log)) return;
  std::istringstream in(read_text(log));
  std::string line, out;
  bool header = true;
  while (std::getline(in, line)) {
    if (header || std::stoll(line.substr(0, line.find(','))) <= step) out += line + "\n";
    header = false;
  }
  write_text_atomic(log, out);
}

// bf16 autocast for the forward pass on CUDA (the loss and optimiser stay fp32); a no-op on the CPU.
class Bf16Autocast {
 public:
  explicit Bf16Autocast(const torch::Device& d) : on_(d.is_cuda()) {
    if (!on_) return;
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
  }
  ~Bf16Autocast() {
    if (!on_) return;
    at::autocast::set_autocast_enabled(at::kCUDA, false);
    at::autocast::clear_cache();
  }

 private:
  bool on_;
};

// Per example the azimuth of a clip: the frame logits pooled (model.doa_pooling) and read out
// (model.doa_estimate) by the grid. Waits for and releases a device batch.
std::vector<double> predict_azimuths(SpatialNet& net, Batch& b, const torch::Device& device, const DoaGrid& grid) {
  if (b.device) b.device->wait(cuda_stream(device));
  auto audio = b.device ? device_tensor(b.device->augmented, {b.size, 2, b.n_samples}, device)
                        : torch::from_blob(b.augmented.data(), {b.size, 2, b.n_samples}, torch::kFloat32).to(device);
  const auto scores = grid.clip_scores(net->doa_logits(net->encode(audio))).to(torch::kCPU, torch::kFloat32).contiguous();
  if (b.device) b.device->release(cuda_stream(device));
  const float* s = scores.data_ptr<float>();
  std::vector<double> az(size_t(b.size));
  for (int i = 0; i < b.size; ++i) az[size_t(i)] = grid.azimuth_deg(s + size_t(i) * size_t(grid.n_classes));
  return az;
}

// Fine-tuning validation: a fixed set of examples of the training distribution under a seed derived from the
// training seed (never the labelled pool's), scored as btrain eval scores. The source cycles over exactly
// n_batches batches, so every validation sees the same examples in the same order. Data-parallel ranks each
// score their share of every batch and add up the errors.
class Validation {
 public:
  Validation(const Config& cfg, const torch::Device& device, BatchShare share, DataParallel& parallel)
      : grid_(cfg.model), device_(device), parallel_(parallel) {
    Config v = cfg;
    v.seed = validation_seed(cfg.seed);
    if (!cfg.train.val_sofa.empty()) v.hrtf.sofa = cfg.train.val_sofa;  // e.g. a head held out of fine-tuning
    for (const auto& f : cfg.train.val_sofa)  // named here: the renderer's loader points at hrtf.sofa
      if (!fs::is_regular_file(f)) throw InputError("SOFA file '" + f + "' does not exist: check train.val_sofa");
    const int B = cfg.train.batch_size;
    n_batches_ = (cfg.train.val_examples + B - 1) / B;
    source_ = on_the_fly(v, device, 0, n_batches_ * B, share);
  }
  static unsigned long long validation_seed(unsigned long long seed) { return seed * 6364136223846793005ULL + 1442695040888963407ULL; }
  // Mean absolute azimuth error (degrees) over the validation set; leaves the network in training mode.
  double mae(SpatialNet& net) {
    torch::NoGradGuard no_grad;
    net->eval();
    double sum = 0;
    long long n = 0;
    for (long long k = 0; k < n_batches_; ++k) {
      Batch b = source_->next();
      const std::vector<double> est = predict_azimuths(net, b, device_, grid_);
      for (int i = 0; i < b.size; ++i) sum += azimuth_error_deg(est[size_t(i)], b.azimuth_deg[size_t(i)]), ++n;
    }
    net->train();
    const std::vector<double> all = parallel_.sum({sum, double(n)});
    return all[0] / std::max(1.0, all[1]);
  }

 private:
  DoaGrid grid_;
  torch::Device device_;
  DataParallel& parallel_;
  long long n_batches_ = 0;
  std::unique_ptr<BatchSource> source_;
};

// best/: the model of the validation step with the lowest error so far, and that step and error.
struct BestState {
  long long step = -1;
  double mae = 1e300;
};
BestState load_best(const fs::path& run) {
  BestState b;
  if (!fs::exists(run / "best" / "state.yaml")) return b;
  std::istringstream in(read_text(run / "best" / "state.yaml"));
  std::string k1, k2;
  in >> k1 >> b.step >> k2 >> b.mae;
  if (k1 != "step:" || k2 != "val_mae_deg:" || b.step < 0)
    throw InputError("'" + (run / "best" / "state.yaml").string() + "' is corrupt: delete best/ and resume");
  return b;
}
void save_best(const fs::path& run, SpatialNet& net, const BestState& b) {
  replace_folder(run / "best", [&](const fs::path& tmp) {
    torch::save(net, (tmp / "model.pt").string());
    char text[96];
    std::snprintf(text, sizeof text, "step: %lld\nval_mae_deg: %.17g\n", b.step, b.mae);
    std::ofstream(tmp / "state.yaml") << text;
  });
}

// What must match for --resume: everything that shapes the model or the data. train.steps may grow (train
// longer), and logging/checkpoint cadence, prefetch depth, threads and the data-parallel timeout never change
// results.
std::string resume_key(const Config& cfg) {
  Config c = cfg;
  c.train.steps = 1;
  c.train.dist_timeout_s = TrainConfig{}.dist_timeout_s;
  c.train.log_every = TrainConfig{}.log_every;
  c.train.checkpoint_every = TrainConfig{}.checkpoint_every;
  c.train.prefetch_batches = TrainConfig{}.prefetch_batches;
  return stored_config_yaml(c);
}

// The optimiser's parameter groups. Fine-tuning may move the encoder more slowly than the new DoA head
// (train.encoder_lr_scale, the usual remedy when a small label set is memorised); at 0 the encoder is frozen
// (no gradients, no weight decay): a linear probe of what pretraining learnt. At 1 there is one group, as
// before the key existed, so earlier run folders resume unchanged.
std::vector<torch::optim::OptimizerParamGroup> parameter_groups(SpatialNet& net, const TrainConfig& t) {
  if (t.encoder_lr_scale == 1.0) return {torch::optim::OptimizerParamGroup(net->parameters())};
  std::vector<torch::Tensor> encoder, head;
  std::set<const void*> in_encoder;
  for (auto& [name, p] : net->encoder_parameters()) encoder.push_back(p), in_encoder.insert(p.unsafeGetTensorImpl());
  for (auto& p : net->parameters())
    if (!in_encoder.count(p.unsafeGetTensorImpl())) head.push_back(p);
  std::vector<torch::optim::OptimizerParamGroup> groups{torch::optim::OptimizerParamGroup(head)};
  if (t.encoder_lr_scale == 0.0) {
    for (auto& p : encoder) p.set_requires_grad(false);
  } else {
    groups.emplace_back(encoder, std::make_unique<torch::optim::AdamWOptions>(
                                     torch::optim::AdamWOptions(t.lr * t.encoder_lr_scale).weight_decay(t.weight_decay)));
  }
  return groups;
}

}  // namespace

void train(const Config& cfg, const TrainOptions& opt) {
  if (opt.out.empty()) throw InputError("--out needs a run folder, for example --out runs/pretrain");
  const fs::path run(opt.out);
  const std::string config_yaml = stored_config_yaml(cfg);
  if (opt.resume) {
    if (!fs::exists(run / "config.yaml")) throw InputError("nothing to resume: '" + opt.out + "' has no config.yaml");
    Config before;
    apply_config_file(before, (run / "config.yaml").string());
    if (resume_key(before) != resume_key(cfg))
      throw InputError("run folder '" + opt.out + "' was started with another configuration: resume with the same "
                       "config (only train.steps may change)");
  } else if (fs::exists(run / "checkpoint") || fs::exists(run / "log.csv")) {
    throw InputError("run folder '" + opt.out + "' already holds a run: use --resume to continue it or another --out");
  }
  if (opt.task == Task::pretrain && !opt.init.empty()) throw InputError("--init is for finetune");
  if (opt.task == Task::pretrain && cfg.train.encoder_lr_scale != 1.0)
    throw InputError("train.encoder_lr_scale is for btrain finetune (pretraining trains the encoder itself): leave it at 1");

  // Data-parallel when started by a launcher with several ranks: each takes its share of every batch.
  const Launch launch = launch_from_env();
  const BatchShare share{int(std::max(0LL, launch.rank)), int(launch.world)};
  share_size(cfg, share);  // train.batch_size must split over the ranks
  const bool leader = share.rank == 0;  // the rank that writes the run folder and prints
  const bool quiet = opt.quiet || !leader;

  torch::manual_seed(cfg.seed);
  const torch::Device device = pick_device(cfg.train.device);
  SpatialNet net = make_net(cfg);
  if (opt.task == Task::finetune && !opt.init.empty() && !opt.resume) {
    fs::path init(opt.init);
    if (fs::is_directory(init)) init /= "encoder.pt";
    load_encoder_state_dict(net, init.string());
  }
  net->to(device);
  torch::optim::AdamW optimizer(parameter_groups(net, cfg.train),
                                torch::optim::AdamWOptions(cfg.train.lr).weight_decay(cfg.train.weight_decay));

  long long step = 0;
  if (opt.resume) step = load_checkpoint(run, net, optimizer);
  // The data source is opened before anything is written, so that bad data leaves no run folder behind.
  const bool pretrain = opt.task == Task::pretrain;
  const long long pool = pretrain ? 0 : cfg.train.labelled_examples;
  const bool validate = !pretrain && cfg.train.val_examples > 0;
  if (validate && !opt.shards.empty())
    throw InputError("train.val_examples draws validation examples on the fly: use --on-the-fly, or set it to 0");
  std::unique_ptr<BatchSource> source = opt.shards.empty()
                                            ? on_the_fly(cfg, device, step, pool, share)
                                            : make_shard_source(cfg, opt.shards, step, pretrain, opt.preload, share);
  // Every rank has checked its inputs when the group forms: only then does the leader write. All ranks then
  // start from the leader's weights (they are equal already: same seed, same files; this makes it so).
  DataParallel parallel(launch, cfg.train.dist_timeout_s);
  std::optional<Validation> validation;
  if (validate) validation.emplace(cfg, device, share, parallel);
  parallel.broadcast_from_leader(net->parameters());
  std::ofstream log, val_log;
  BestState best;
  if (leader) {
    std::error_code ec;
    fs::create_directories(run, ec);
    if (ec) throw InputError("cannot create run folder '" + opt.out + "': " + ec.message());
    write_text_atomic(run / "config.yaml", config_yaml);
    const fs::path log_path = run / "log.csv";
    if (opt.resume) truncate_log(log_path, step);
    log.open(log_path, std::ios::app);
    if (!opt.resume) log << "step,loss,data_ms,compute_ms,data_share,examples_per_s\n";
    const fs::path val_path = run / "val.csv";
    if (validate) {
      if (opt.resume) {
        truncate_log(val_path, step);
        best = load_best(run);
      }
      const bool fresh = !fs::exists(val_path);
      val_log.open(val_path, std::ios::app);
      if (fresh) val_log << "step,val_mae_deg\n";
    }
  }

  const DoaGrid grid(cfg.model);
  long long n_params = 0;
  for (const auto& t : net->parameters()) n_params += t.numel();
  if (!quiet)
    std::fprintf(stderr, "btrain %s: %s, device %s, %lld parameters, data %s%s, steps %lld..%lld\n",
                 pretrain ? "pretrain" : "finetune", opt.out.c_str(), device.str().c_str(), n_params,
                 source->describe().c_str(),
                 share.ranks > 1 ? (", data-parallel over " + std::to_string(share.ranks) + " ranks (Gloo), " +
                                    std::to_string(share_size(cfg, share)) + " examples of each batch per rank")
                                       .c_str()
                                 : "",
                 step, cfg.train.steps);

  Progress progress(cfg.train.steps, "steps", quiet, step);
  double data_ms_acc = 0, compute_ms_acc = 0, loss_acc = 0;
  int acc_n = 0;
  long long last_saved = step;
  net->train();
  for (; step < cfg.train.steps; ++step) {
    const auto t0 = Clock::now();
    Batch b = source->next();
    const double data_ms = ms_since(t0);
    const auto t1 = Clock::now();
    torch::manual_seed(cfg.seed * 1000003ULL + uint64_t(step));  // per-step seed: resumable randomness
    const int B = b.size;
    double stall_ms = 0;
    if (b.device) b.device->wait(cuda_stream(device));  // the step's kernels queue behind the batch
    auto audio = b.device ? device_tensor(b.device->augmented, {B, 2, b.n_samples}, device)
                          : torch::from_blob(b.augmented.data(), {B, 2, b.n_samples}, torch::kFloat32).to(device);
    torch::Tensor loss, encoded;
    std::optional<Bf16Autocast> autocast;
    if (cfg.train.precision == "bf16") autocast.emplace(device);
    encoded = net->encode(audio);
    if (pretrain) {
      auto target = (b.device ? device_tensor(b.device->teacher, {B, b.n_features, b.n_frames}, device)
                              : torch::from_blob(b.teacher.data(), {B, b.n_features, b.n_frames}, torch::kFloat32)
                                    .to(device))
                        .transpose(1, 2);
      // Per-utterance normalisation of the teacher's features (zero mean, unit variance).
      auto mean = target.mean({1, 2}, true);
      auto stdv = target.std({1, 2}, true, true);
      target = (target - mean) / (stdv + 1e-5);
      loss = torch::mse_loss(net->predict_teacher(encoded).to(torch::kFloat32), target);
    } else {
      std::vector<int64_t> labels(static_cast<size_t>(B));
      for (int i = 0; i < B; ++i) labels[size_t(i)] = grid.class_of(b.azimuth_deg[size_t(i)]);
      auto y = torch::tensor(labels, torch::kInt64).to(device);
      auto logits = net->doa_logits(encoded).to(torch::kFloat32);  // [B, F, C]; frame-wise cross-entropy
      const int64_t frames = logits.size(1);
      loss = torch::nn::functional::cross_entropy(logits.reshape({B * frames, -1}),
                                                  y.unsqueeze(1).expand({B, frames}).reshape({B * frames}));
    }
    autocast.reset();
    optimizer.zero_grad();
    loss.backward();
    // With several ranks: the mean gradient and loss of the global batch, and whether any rank must stop.
    const DataParallel::Step agreed = parallel.average_gradients(net->parameters(), loss.item<double>(), g_stop_requested.load());
    const double loss_value = agreed.loss;
    if (!std::isfinite(loss_value))
      throw RuntimeError("loss is " + std::string(std::isnan(loss_value) ? "NaN" : "infinite") + " at step " +
                         std::to_string(step) + "; nothing was saved after it: the last checkpoint (step " +
                         std::to_string(last_saved) + ") in '" + opt.out + "' is intact");
    if (cfg.train.grad_clip > 0) torch::nn::utils::clip_grad_norm_(net->parameters(), cfg.train.grad_clip);
    optimizer.step();
    if (b.device) {
      b.device->release(cuda_stream(device));  // nothing after this point reads the batch
      stall_ms = b.device->stall_ms();         // loss.item() synchronised past the wait already
    }
    // Data time = host wait for the batch + GPU time the step's stream stood waiting for it.
    const double compute_ms = ms_since(t1) - stall_ms;
    data_ms_acc += data_ms + stall_ms, compute_ms_acc += compute_ms, loss_acc += loss_value, ++acc_n;
    if ((step + 1) % cfg.train.log_every == 0 || step + 1 == cfg.train.steps) {
      const double total = data_ms_acc + compute_ms_acc;  // the leader's times; examples of all ranks
      char row[256];
      std::snprintf(row, sizeof row, "%lld,%.8g,%.3f,%.3f,%.4f,%.2f\n", step + 1, loss_acc / acc_n, data_ms_acc / acc_n,
                    compute_ms_acc / acc_n, total > 0 ? data_ms_acc / total : 0.0,
                    1000.0 * cfg.train.batch_size * acc_n / std::max(total, 1e-9));
      if (leader) log << row << std::flush;
      if (!quiet)
        std::fprintf(stderr, "%sstep %lld loss %.5f  data %.1f ms / compute %.1f ms per step (%.1f%% waiting)\n",
                     "", step + 1, loss_acc / acc_n, data_ms_acc / acc_n, compute_ms_acc / acc_n,
                     total > 0 ? 100.0 * data_ms_acc / total : 0.0);
      data_ms_acc = compute_ms_acc = loss_acc = 0;
      acc_n = 0;
    }
    if (validation && ((step + 1) % cfg.train.val_every == 0 || step + 1 == cfg.train.steps)) {
      const double mae = validation->mae(net);  // every rank's share of the examples
      if (leader) val_log << step + 1 << "," << mae << "\n" << std::flush;
      if (mae < best.mae) {
        best = {step + 1, mae};
        if (leader) save_best(run, net, best);
      }
      if (!quiet)
        std::fprintf(stderr, "step %lld validation MAE %.2f deg (best %.2f at step %lld)\n", step + 1, mae, best.mae, best.step);
    }
    const bool stop = agreed.stop;
    if ((step + 1) % cfg.train.checkpoint_every == 0 || step + 1 == cfg.train.steps || stop) {
      if (leader) save_checkpoint(run, net, optimizer, step + 1, opt.task);
      last_saved = step + 1;
    }
    progress.update(step + 1);
    // No rank leaves before the leader's last checkpoint is on disk (a launcher ends the others when one exits).
    if (stop || step + 1 == cfg.train.steps) parallel.barrier();
    if (stop)
      throw Interrupted("interrupted at step " + std::to_string(step + 1) + "; checkpoint saved in '" + opt.out +
                        "': rerun the same command with --resume");
  }
  progress.finish();
  if (!quiet) std::fprintf(stderr, "btrain: done, %lld steps; encoder weights in %s\n", step, (run / "encoder.pt").c_str());
}

void evaluate(const Config& run_cfg, const EvalOptions& opt) {
  const Launch launch = launch_from_env();
  if (launch.world > 1)
    throw InputError(launch.rank_var + "=" + std::to_string(launch.rank) + " of " + std::to_string(launch.world) +
                     ": btrain eval runs in one process (every rank would write the same report): start it without "
                     "a launcher");
  const fs::path run(opt.model);
  if (!fs::exists(run / "checkpoint" / "model.pt"))
    throw InputError("--model '" + opt.model + "' is not a btrain run folder (no checkpoint/model.pt)");
  Config cfg = run_cfg;
  cfg.train.labelled_examples = 0;  // a fine-tuning label budget must not shrink the test set
  SpatialNet net = make_net(cfg);
  // A run that validated is scored at its best validation step (best/), else at its last step.
  const BestState best = load_best(run);
  const fs::path weights = best.step >= 0 ? run / "best" / "model.pt" : run / "checkpoint" / "model.pt";
  std::string which = "the last step";
  if (best.step >= 0) {
    char text[128];
    std::snprintf(text, sizeof text, "the best validation step %lld (validation MAE %.2f deg)", best.step, best.mae);
    which = text;
  }
  std::fprintf(stderr, "btrain eval: %s at %s\n", opt.model.c_str(), which.c_str());
  try {
    torch::load(net, weights.string());
  } catch (const c10::Error& e) {
    std::string what = e.what_without_backtrace();
    throw InputError("model in '" + opt.model + "' does not match its config.yaml: " + what.substr(0, what.find('\n')));
  }
  const torch::Device device = pick_device(cfg.train.device);
  net->to(device);
  net->eval();
  torch::NoGradGuard no_grad;
  const DoaGrid grid(cfg.model);
  long long n_batches = 0;
  std::unique_ptr<BatchSource> source;
  if (!opt.shards.empty()) {
    // Every example once: the batch size becomes the largest divisor of N not above train.batch_size.
    const long long n = ShardReader(opt.shards).info().n_examples;
    int batch = int(std::min<long long>(cfg.train.batch_size, n));
    while (n % batch != 0) --batch;
    cfg.train.batch_size = batch;
    source = make_shard_source(cfg, opt.shards, 0, false);
    n_batches = n / batch;
  } else {
    Config trained;
    apply_config_file(trained, (run / "config.yaml").string());
    if (trained.seed == cfg.seed)
      throw InputError("on-the-fly evaluation with the training seed (" + std::to_string(cfg.seed) +
                       ") would test on training examples: pass another --seed, or --shards with a test shard");
    source = on_the_fly(cfg, device, 0, 0);
    n_batches = std::max<long long>(1, opt.examples / cfg.train.batch_size);
  }
  std::error_code ec;
  fs::create_directories(opt.report, ec);
  if (ec) throw InputError("cannot create --report folder '" + opt.report + "': " + ec.message());
  std::ofstream csv(fs::path(opt.report) / "predictions.csv");
  csv << "azimuth_deg,predicted_deg,abs_error_deg,snr_db,t60_s,noise_type,example_index\n";
  double sum_err = 0;
  long long n = 0, exact = 0, within10 = 0, front_back = 0;
  for (long long k = 0; k < n_batches; ++k) {
    Batch b = source->next();
    const std::vector<double> pred = predict_azimuths(net, b, device, grid);
    for (int i = 0; i < b.size; ++i) {
      const double truth = b.azimuth_deg[size_t(i)], est = pred[size_t(i)];
      double err = azimuth_error_deg(est, truth);
      sum_err += err, ++n;
      exact += grid.class_of(est) == grid.class_of(truth);
      within10 += err <= 10.0;
      // Front-back confusion: the estimate is nearer the truth mirrored about the interaural axis.
      const double mirrored = 180.0 - truth;
      front_back += grid.full && azimuth_error_deg(est, mirrored) < err;
      csv << truth << "," << est << "," << err << "," << b.snr_db[size_t(i)] << "," << b.t60_s[size_t(i)] << ","
          << int(b.noise_type[size_t(i)]) << "," << static_cast<long long>(b.example_index[size_t(i)]) << "\n";
    }
  }
  std::ostringstream md;
  md << "# DoA evaluation of " << opt.model << " at " << which << " (model.doa_pooling: " << cfg.model.doa_pooling
     << ", model.doa_estimate: " << cfg.model.doa_estimate << ")\n\n"
     << "| examples | MAE (deg) | accuracy (exact class) | within 10 deg |" << (grid.full ? " front-back confusions |" : "")
     << "\n|---|---|---|---|" << (grid.full ? "---|" : "") << "\n| " << n << " | " << sum_err / std::max(1LL, n) << " | "
     << double(exact) / std::max(1LL, n) << " | " << double(within10) / std::max(1LL, n) << " |";
  if (grid.full) md << " " << double(front_back) / std::max(1LL, n) << " |";
  md << "\n";
  write_text_atomic(fs::path(opt.report) / "summary.md", md.str());
  std::printf("%s", md.str().c_str());
}

}  // namespace bsim
