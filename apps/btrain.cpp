// btrain: feature-distillation pretraining, DoA fine-tuning and evaluation (libtorch).
//   btrain --on-the-fly                      pretraining on the fly with the default config
//   btrain pretrain (--on-the-fly | --shards f.h5) --out runs/pre [--resume]
//   btrain finetune [--init runs/pre] (--on-the-fly | --shards f.h5) --out runs/doa [--resume]
//   btrain eval --model runs/doa [--shards test.h5] --report reports/doa
#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>

#include <csignal>
#include <cstdio>
#include <filesystem>

#include "apps/cli.h"
#include "io/config.h"
#include "io/error.h"
#include "sim/generate.h"
#include "train/trainer.h"

using namespace bsim;

namespace {

extern "C" void on_signal(int) { g_stop_requested = true; }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"btrain: spatial feature distillation and DoA training on bsim data"};
  app.set_version_flag("--version", std::string("btrain ") + BSIM_VERSION);

  // Bare `btrain --on-the-fly` means pretraining with the default config.
  ConfigFlags top;
  TrainOptions top_opt;
  bool top_fly = false;
  app.add_flag("--on-the-fly", top_fly, "pretrain on data rendered while training (default config)");
  app.add_option("--out", top_opt.out, "run folder")->capture_default_str();
  app.add_flag("--resume", top_opt.resume, "continue from the run folder's checkpoint");
  add_config_flags(&app, top);
  top_opt.out = "runs/pretrain";

  ConfigFlags pre_f, fin_f, eval_f;
  TrainOptions pre, fin;
  bool pre_fly = false, fin_fly = false;
  auto* p = app.add_subcommand("pretrain", "feature-distillation pretraining (student predicts the teacher's features)");
  p->add_flag("--on-the-fly", pre_fly, "render data while training");
  p->add_option("--shards", pre.shards, "read data from an HDF5 shard");
  p->add_flag("--preload", pre.preload, "with --shards: read the whole shard into memory first");
  p->add_option("--out", pre.out, "run folder")->required();
  p->add_flag("--resume", pre.resume, "continue from the run folder's checkpoint");
  p->add_flag("--quiet", pre.quiet, "no progress lines");
  add_config_flags(p, pre_f);

  auto* f = app.add_subcommand("finetune", "DoA fine-tuning (frame-wise cross-entropy)");
  f->add_option("--init", fin.init, "pretrained encoder: a pretraining run folder or its encoder.pt (omit: from scratch)");
  f->add_flag("--on-the-fly", fin_fly, "render data while training");
  f->add_option("--shards", fin.shards, "read data from an HDF5 shard");
  f->add_flag("--preload", fin.preload, "with --shards: read the whole shard into memory first");
  f->add_option("--out", fin.out, "run folder")->required();
  f->add_flag("--resume", fin.resume, "continue from the run folder's checkpoint");
  f->add_flag("--quiet", fin.quiet, "no progress lines");
  add_config_flags(f, fin_f);
  fin.task = Task::finetune;

  EvalOptions ev;
  auto* e = app.add_subcommand("eval", "DoA metrics of a fine-tuned model");
  e->add_option("--model", ev.model, "fine-tuning run folder")->required();
  e->add_option("--shards", ev.shards, "test shard (omit: on the fly with --seed)");
  e->add_option("--report", ev.report, "report folder")->required();
  e->add_option("--examples", ev.examples, "examples when on the fly")->capture_default_str();
  add_config_flags(e, eval_f);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& err) {
    return app.exit(err);
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  return run_reporting_errors("btrain", [&]() -> int {
  try {
    auto check_source = [](bool fly, const std::string& shards) {
      if (fly == !shards.empty()) throw InputError("give exactly one data source: --on-the-fly or --shards FILE");
      if (!shards.empty() && !std::filesystem::exists(shards)) throw InputError("shard '" + shards + "' does not exist");
    };
    if ((pre.preload && pre.shards.empty()) || (fin.preload && fin.shards.empty()))
      throw InputError("--preload goes with --shards FILE");
    if (*p) {
      check_source(pre_fly, pre.shards);
      train(resolve_config(pre_f), pre);
    } else if (*f) {
      check_source(fin_fly, fin.shards);
      train(resolve_config(fin_f), fin);
    } else if (*e) {
      const std::string run_cfg = (std::filesystem::path(ev.model) / "config.yaml").string();
      if (!std::filesystem::exists(run_cfg)) throw InputError("--model '" + ev.model + "' has no config.yaml");
      evaluate(resolve_config(eval_f, run_cfg), ev);
    } else if (top_fly) {
      train(resolve_config(top), top_opt);
    } else {
      std::fprintf(stderr, "%s", app.help().c_str());
      return 2;
    }
    return 0;
  } catch (const c10::Error& err) {  // libtorch's own errors, first line only
    const std::string what = err.what_without_backtrace();
    throw RuntimeError("libtorch: " + what.substr(0, what.find('\n')));
  }
  });
}
