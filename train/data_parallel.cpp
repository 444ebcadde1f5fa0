// c10d's TCPStore and Gloo process group behind DataParallel. The buckets travel through host memory: Gloo
// reduces on the CPU, and one device-to-host copy of the step's gradients (7.4 MB for the paper's model) is
// small beside a training step; NCCL would keep them on the GPUs (not used yet: see README, Training).
#include "train/data_parallel.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/torch.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <sstream>
#include <string>

#include "io/error.h"

namespace bsim {

struct DataParallel::Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
};

namespace {

// Every tensor flattened into one float32 tensor on the host, in order.
torch::Tensor flat_on_host(const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> parts;
  parts.reserve(tensors.size());
  for (const auto& t : tensors) parts.push_back(t.detach().reshape(-1).to(torch::kFloat32));
  return torch::cat(parts).to(torch::kCPU).contiguous();
}

// Copies consecutive pieces of `flat` back into `tensors` (each on its own device, in its own dtype).
void unflatten_into(const torch::Tensor& flat, const std::vector<torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  int64_t at = 0;
  for (const auto& t : tensors) {
    t.copy_(flat.narrow(0, at, t.numel()).view(t.sizes()));
    at += t.numel();
  }
}

std::string first_line(const std::exception& e) {
  const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
  const std::string msg = c10_error ? c10_error->what_without_backtrace() : e.what();
  return msg.substr(0, msg.find('\n'));
}

// Gloo's and the store's words for a wait that ran out of time.
bool timed_out(const std::string& msg) {
  return msg.find("imed out") != std::string::npos || msg.find("imeout") != std::string::npos;
}

std::string seconds(double s) {
  std::ostringstream out;
  out << s;
  return out.str();
}

void wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what, double timeout_s) {
  try {
    work->wait();
  } catch (const std::exception& e) {
    const std::string msg = first_line(e);
    if (timed_out(msg))
      throw RuntimeError(std::string("data-parallel ") + what + ": no answer from another rank within train.dist_timeout_s=" +
                         seconds(timeout_s) + " s (a rank hung or was suspended?): " + msg);
    throw RuntimeError(std::string("data-parallel ") + what + " failed (another rank stopped?): " + msg);
  }
}

}  // namespace

DataParallel::DataParallel(const Launch& launch, double timeout_s) : timeout_s_(timeout_s) {
  if (launch.world <= 1) return;
  const std::string where = launch.rank_var + "=" + std::to_string(launch.rank) + " of " + std::to_string(launch.world);
  if (launch.master_addr.empty() || launch.master_port == 0)
    throw InputError(where + ": data-parallel training needs MASTER_ADDR and MASTER_PORT (torchrun sets them; "
                     "under SLURM export them, for example the first node's name and 29500)");
  if (launch.rank >= launch.world) throw InputError(where + ": the rank must be below the number of ranks");
  rank_ = int(launch.rank), ranks_ = int(launch.world);
  group_ = std::make_unique<Group>();
  // Until every rank has joined (up to the store's 300 s), Ctrl-C and SIGTERM end the process as they normally
  // would: btrain's handlers only ask the training loop to stop, which has not started, and nothing is written yet.
  struct DefaultSignals {
    void (*int_handler)(int) = std::signal(SIGINT, SIG_DFL);
    void (*term_handler)(int) = std::signal(SIGTERM, SIG_DFL);
    ~DefaultSignals() { std::signal(SIGINT, int_handler), std::signal(SIGTERM, term_handler); }
  } during_join;
  try {
    const auto timeout = std::chrono::milliseconds(static_cast<long long>(timeout_s * 1000.0));
    c10d::TCPStoreOptions so;
    so.port = uint16_t(launch.master_port);
    so.isServer = rank_ == 0;
    so.numWorkers = ranks_;
    so.timeout = timeout;
    group_->store = c10::make_intrusive<c10d::TCPStore>(launch.master_addr, so);
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    // As torch.distributed does: GLOO_SOCKET_IFNAME names the network interfaces to use, else the host's own.
    if (const char* names = std::getenv("GLOO_SOCKET_IFNAME")) {
      std::istringstream in(names);
      for (std::string name; std::getline(in, name, ',');) {
        if (name.empty()) continue;
        try {
          options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(name));
        } catch (const std::exception&) {
          throw InputError("GLOO_SOCKET_IFNAME='" + std::string(names) + "': this machine has no network interface '" +
                           name + "' (`ip -br addr` lists them; unset the variable to use the host name's)");
        }
      }
    }
    if (options->devices.empty()) options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    group_->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(group_->store, rank_, ranks_, options);
  } catch (const InputError&) {
    throw;
  } catch (const std::exception& e) {  // c10d's errors (with a backtrace after the first line) or Gloo's own
    const std::string msg = first_line(e);
    throw RuntimeError(where + ": cannot join the ranks at " + launch.master_addr + ":" +
                       std::to_string(launch.master_port) +
                       (timed_out(msg) ? " within train.dist_timeout_s=" + seconds(timeout_s) + " s (did every rank start?)"
                                       : std::string()) +
                       ": " + msg);
  }
}

DataParallel::~DataParallel() = default;

void DataParallel::broadcast_from_leader(const std::vector<torch::Tensor>& tensors) {
  if (!group_ || tensors.empty()) return;
  std::vector<torch::Tensor> flat{flat_on_host(tensors)};
  c10d::BroadcastOptions o;
  o.rootRank = 0;
  wait(group_->gloo->broadcast(flat, o), "broadcast", timeout_s_);
  unflatten_into(flat[0], tensors);
}

DataParallel::Step DataParallel::average_gradients(const std::vector<torch::Tensor>& parameters, double loss, bool stop) {
  if (!group_) return {loss, stop};
  std::vector<torch::Tensor> grads;
  for (const auto& p : parameters)
    if (p.grad().defined()) grads.push_back(p.grad());
  // Two all-reduces in flight together: the gradients in float32 and the step's loss and stop request in
  // float64 (a collective takes tensors of one type).
  std::vector<torch::Tensor> flat{grads.empty() ? torch::zeros({1}) : flat_on_host(grads)};
  std::vector<torch::Tensor> meta{torch::tensor({loss, stop ? 1.0 : 0.0}, torch::kFloat64)};
  auto g = group_->gloo->allreduce(flat);
  auto m = group_->gloo->allreduce(meta);
  wait(g, "gradient all-reduce", timeout_s_);
  wait(m, "all-reduce", timeout_s_);
  flat[0].div_(double(ranks_));
  unflatten_into(flat[0], grads);
  const double* s = meta[0].data_ptr<double>();
  return {s[0] / double(ranks_), s[1] > 0};
}

std::vector<double> DataParallel::sum(std::vector<double> values) {
  if (!group_ || values.empty()) return values;
  std::vector<torch::Tensor> t{torch::tensor(values, torch::kFloat64)};
  wait(group_->gloo->allreduce(t), "all-reduce", timeout_s_);
  const double* s = t[0].data_ptr<double>();
  return std::vector<double>(s, s + values.size());
}

void DataParallel::barrier() {
  if (group_) wait(group_->gloo->barrier(), "barrier", timeout_s_);
}

}  // namespace bsim
