// Where this process stands in a multi-process launch: torchrun's RANK / WORLD_SIZE / LOCAL_WORLD_SIZE and
// MASTER_ADDR / MASTER_PORT, else SLURM's SLURM_PROCID / SLURM_NTASKS. `bsim generate` uses the rank to write its
// own part of a dataset; `btrain` uses all of it to train data-parallel. Which GPU a rank takes (LOCAL_RANK,
// SLURM_LOCALID) is kernels/device.h's cuda_device_index.
#pragma once
#include <algorithm>
#include <cstdlib>
#include <functional>
#include <string>
#include <utility>

#include "io/error.h"

namespace bsim {

struct Launch {
  long long rank = -1;    // -1: not started by a launcher
  long long world = 1;    // ranks in the launch
  long long local_ranks = 1;  // ranks on this machine (torchrun's LOCAL_WORLD_SIZE), 1 when unset
  std::string rank_var;   // the variable the rank came from ("RANK" or "SLURM_PROCID")
  std::string master_addr;  // MASTER_ADDR / MASTER_PORT, where rank 0 listens; empty / 0 when unset
  int master_port = 0;
};

// Reads the launch from `env` (the process environment by default). InputError naming the variable when one
// holds something other than a whole number.
inline Launch launch_from_env(const std::function<const char*(const char*)>& env = [](const char* v) { return std::getenv(v); }) {
  const auto number = [](const char* var, const char* v, const char* what) {
    const std::string s = v;
    if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string::npos)
      throw InputError(std::string(var) + "='" + s + "' is not " + what);
    return std::stoll(s);
  };
  Launch r;
  for (const auto& [rank_var, world_var] : {std::pair{"RANK", "WORLD_SIZE"}, std::pair{"SLURM_PROCID", "SLURM_NTASKS"}})
    if (const char* v = env(rank_var)) {
      r.rank = number(rank_var, v, "a rank number"), r.rank_var = rank_var;
      if (const char* w = env(world_var)) r.world = number(world_var, w, "a number of ranks");
      break;
    }
  if (const char* n = env("LOCAL_WORLD_SIZE")) r.local_ranks = std::max(1LL, number("LOCAL_WORLD_SIZE", n, "a number of ranks"));
  if (const char* a = env("MASTER_ADDR")) r.master_addr = a;
  if (const char* p = env("MASTER_PORT")) {
    const long long port = number("MASTER_PORT", p, "a port number");
    if (port < 1 || port > 65535) throw InputError("MASTER_PORT='" + std::string(p) + "' is not a port number (1-65535)");
    r.master_port = int(port);
  }
  return r;
}

}  // namespace bsim
