// What bsim and btrain share on the command line: the configuration flags (--config FILE, --set key=value,
// --seed, --threads, resolved in that order on top of the embedded defaults or a run's stored config) and
// the one place where exceptions become a one-line message and an exit code.
#pragma once
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>
#include <vector>

#include "io/config.h"
#include "io/error.h"

namespace bsim {

struct ConfigFlags {
  std::string file;
  std::vector<std::string> sets;
  std::string seed;  // as --set seed=N: the whole unsigned 64-bit range, and the same error for bad values
  int threads = -1;
};

inline void add_config_flags(CLI::App* app, ConfigFlags& f) {
  app->add_option("--config", f.file, "YAML config file (keys: `bsim help-config`)");
  app->add_option("--set", f.sets, "override one key, e.g. --set room.t60_s=[0.3,0.6] (repeatable)");
  app->add_option("--seed", f.seed, "base seed (same as --set seed=N)");
  app->add_option("--threads", f.threads, "worker threads, 0 = all cores");
}

// `base_file`: a config applied before --config (btrain eval starts from the run's config.yaml).
inline Config resolve_config(const ConfigFlags& f, const std::string& base_file = "") {
  Config cfg;
  if (!base_file.empty()) apply_config_file(cfg, base_file);
  if (!f.file.empty()) apply_config_file(cfg, f.file);
  for (const auto& s : f.sets) apply_override(cfg, s);
  if (!f.seed.empty()) apply_override(cfg, "seed=" + f.seed);
  if (f.threads >= 0) cfg.threads = f.threads;
  validate(cfg);
  return cfg;
}

// Runs a command's body and returns its exit code; errors become one line on stderr: 2 bad input,
// 3 runtime/I-O failure, 130 interrupted (Ctrl-C), 1 anything unexpected.
template <typename Body>
int run_reporting_errors(const char* prog, Body&& body) {
  try {
    return body();
  } catch (const Interrupted& e) {
    std::fprintf(stderr, "\n%s: %s\n", prog, e.what());
    return 130;
  } catch (const InputError& e) {
    std::fprintf(stderr, "%s: error: %s\n", prog, e.what());
    return 2;
  } catch (const RuntimeError& e) {
    std::fprintf(stderr, "%s: error: %s\n", prog, e.what());
    return 3;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: internal error: %s\n", prog, e.what());
    return 1;
  }
}

}  // namespace bsim
