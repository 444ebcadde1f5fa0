// btrain's jobs: feature-distillation pretraining, DoA fine-tuning (from a pretrained encoder or from
// scratch with the same budget) and evaluation. A run folder holds config.yaml, log.csv, checkpoint/
// (model, optimiser, step) and encoder.pt, and when fine-tuning validates (train.val_examples) val.csv and
// best/ (the model of the best validation step, which evaluation scores); --resume continues exactly where a
// checkpoint left off.
#pragma once
#include <string>

#include "io/config.h"

namespace bsim {

enum class Task { pretrain, finetune };

struct TrainOptions {
  Task task = Task::pretrain;
  std::string out;      // run folder
  std::string shards;   // HDF5 shard; empty = on the fly
  bool preload = false; // read the whole shard into memory first
  std::string init;     // finetune: encoder.pt or a pretraining run folder; empty = from scratch
  bool resume = false;
  bool quiet = false;
};
void train(const Config& cfg, const TrainOptions& opt);

struct EvalOptions {
  std::string model;    // a fine-tuning run folder
  std::string shards;   // test shard; empty = on the fly with the run's config and --seed
  std::string report;   // folder for predictions.csv and summary.md
  long long examples = 512;  // on the fly only
};
void evaluate(const Config& cfg, const EvalOptions& opt);

}  // namespace bsim
