// Data-parallel training across the processes of one launch (torchrun --nproc-per-node N --no-python btrain
// ..., or SLURM with MASTER_ADDR / MASTER_PORT set): PyTorch's own distributed layer, a c10d TCPStore for the
// rendezvous and a Gloo process group for the collectives. Each rank computes the gradients of its share of the
// global batch (train.batch_size); one all-reduce per step averages them, so every rank applies the same update
// and the model is the one a single process would train, up to the order of float sums. Outside a launch (one
// rank) nothing here does any work. The c10d headers stay in data_parallel.cpp.
#pragma once
#include <torch/types.h>

#include <memory>
#include <vector>

#include "io/launch.h"

namespace bsim {

class DataParallel {
 public:
  // One rank (`launch.world` 1): no process group. Otherwise joins the group at MASTER_ADDR:MASTER_PORT (rank 0
  // listens there), waiting for every rank; InputError when the launch lacks what that needs. timeout_s
  // (train.dist_timeout_s) bounds the wait for the others, to join and in every collective: past it the rank
  // stops with an error naming the key, so that a rank that hangs does not hold the launch indefinitely.
  DataParallel(const Launch& launch, double timeout_s);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  int rank() const { return rank_; }
  int ranks() const { return ranks_; }
  bool leader() const { return rank_ == 0; }  // the rank that writes the run folder and prints

  // Copies rank 0's values of `tensors` into every rank's (parameters at the start: one model on every rank).
  void broadcast_from_leader(const std::vector<torch::Tensor>& tensors);

  // What the ranks agree on after a step.
  struct Step {
    double loss = 0;    // the mean of the ranks' losses: the global batch's loss
    bool stop = false;  // some rank was asked to stop
  };
  // Replaces the gradient of every parameter that has one by its mean over the ranks, in one all-reduce that
  // also carries each rank's loss and stop request. The ranks must hold gradients for the same parameters.
  Step average_gradients(const std::vector<torch::Tensor>& parameters, double loss, bool stop);

  // The element-wise sums of every rank's `values` (the same length on all ranks).
  std::vector<double> sum(std::vector<double> values);

  // Returns once every rank has called it.
  void barrier();

 private:
  struct Group;
  std::unique_ptr<Group> group_;
  int rank_ = 0, ranks_ = 1;
  double timeout_s_ = 0;
};

}  // namespace bsim
