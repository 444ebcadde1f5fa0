// bsim: the command-line front end. Parses flags into one Config, prints it, runs a subcommand, and turns
// every error into one line on stderr with a non-zero exit code.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <limits>
#include <filesystem>
#include <iostream>
#include <fstream>
#include <sstream>
#include <thread>

#include "apps/cli.h"
#include "doa/classic.h"
#include "io/audio.h"
#include "io/config.h"
#include "io/error.h"
#include "io/launch.h"
#include "io/progress.h"
#include "io/shard.h"
#include "kernels/device.h"
#include "kernels/doa_gpu.h"
#include "kernels/pipeline_gpu.h"
#include "sim/brir.h"
#include "sim/generate.h"
#include "sim/parallel.h"
#include "sim/pipeline.h"
#include "sim/scene.h"

using namespace bsim;

namespace {

void print_config(const Config& cfg, bool quiet) {
  if (quiet) return;
  std::fprintf(stderr, "--- resolved configuration ---\n%s------------------------------\n", to_yaml(cfg).c_str());
}

std::vector<double> parse_triple(const std::string& s, const char* flag) {
  std::vector<double> v;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      v.push_back(std::stod(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw InputError(std::string(flag) + " '" + s + "': expected three numbers x,y,z in metres");
    }
  }
  if (v.size() != 3) throw InputError(std::string(flag) + " '" + s + "': expected three numbers x,y,z in metres");
  return v;
}

// --device cpu, cuda or cuda:N: for CUDA, makes the device it names current (cuda::cuda_device_index: plain cuda
// follows a launcher's local rank) and returns its index; -1 for the CPU.
int require_device(const std::string& device, bool quiet) {
  if (device == "cpu") return -1;
  cuda::cuda_device_index(device, std::numeric_limits<int>::max());  // a malformed value says so before the devices
  std::string why;
  const auto devices = cuda::list_devices(&why);
  if (devices.empty()) throw InputError("--device " + device + ": " + why + "; use --device cpu");
  const int index = cuda::cuda_device_index(device, int(devices.size()));
  cuda::use_device(index);
  if (!quiet && devices.size() > 1) std::fprintf(stderr, "using CUDA device %s\n", devices[size_t(index)].c_str());
  return index;
}

int run_info(const std::string& path) {
  const ShardInfo s = read_shard_info(path);
  std::printf("%s\n", s.path.c_str());
  std::printf("  format        %s v%lld%s\n", s.format.c_str(), s.format_version,
              s.complete ? "" : "  (INCOMPLETE: an interrupted run; resume it with --resume)");
  std::printf("  examples      %lld of %lld written\n", s.n_done, s.n_examples);
  std::printf("  audio         clean, augmented [%lld, 2, %d] %s at %.0f Hz (%.2f s)\n", s.n_examples, s.n_samples,
              s.audio_dtype.c_str(), s.fs_hz, s.n_samples / s.fs_hz);
  std::printf("  teacher       %s [%lld, %d, %d] float32\n", s.teacher.c_str(), s.n_examples, s.n_features, s.n_frames);
  std::printf("  file size     %.1f MB (%.1f kB per example)\n", s.file_bytes / 1e6,
              s.n_done ? s.file_bytes / 1e3 / double(s.n_done) : 0.0);
  std::printf("  created       %s by bsim %s\n", s.created.c_str(), s.bsim_version.c_str());
  std::printf("  %-16s %10s %10s %10s\n", "scene column", "min", "mean", "max");
  for (const auto& kv : s.columns) {
    double lo = INFINITY, hi = -INFINITY, sum = 0;
    long n = 0;
    for (double v : kv.second)
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v), sum += v, ++n;
    if (n) std::printf("  %-16s %10.3f %10.3f %10.3f\n", kv.first.c_str(), lo, sum / n, hi);
  }
  auto it = s.columns.find("noise_type");
  if (it != s.columns.end()) {
    long counts[3] = {0, 0, 0};
    for (double v : it->second)
      if (v >= 0 && v < 3) ++counts[int(v)];
    std::printf("  noise types   diffuse %ld, point %ld, babble %ld\n", counts[0], counts[1], counts[2]);
  }
  return 0;
}

void write_example_wavs(const Example& ex, const std::string& dir, double fs) {
  const int T = ex.n_samples;
  char stem[64];
  std::snprintf(stem, sizeof stem, "ex%06llu", (unsigned long long)ex.scene.index);
  const std::string base = (std::filesystem::path(dir) / stem).string();
  for (auto [name, sig] : {std::pair<const char*, const std::vector<float>*>{"clean", &ex.clean},
                           {"reverberant", &ex.reverberant},
                           {"noise", &ex.noise},
                           {"augmented", &ex.augmented}})
    write_wav(base + "_" + name + ".wav", {sig->data(), sig->data() + T}, T, fs);
  const Scene& s = ex.scene;
  FILE* f = std::fopen((base + "_scene.txt").c_str(), "w");
  if (!f) throw InputError("cannot write '" + base + "_scene.txt'");
  std::fprintf(f,
               "azimuth_deg %.2f\nelevation_deg %.2f\ndistance_m %.3f\nroom_m %.2f %.2f %.2f\nt60_s %.3f\n"
               "anechoic %d\nnoise %s\nsnr_db %.2f\nhrtf_index %d\nhead_scale %.3f\nspeech_tilt_db_per_octave %.2f\n"
               "images %d\n",
               s.azimuth_deg, s.elevation_deg, s.distance_m, s.room.size_m.x, s.room.size_m.y, s.room.size_m.z,
               s.t60_s, int(s.anechoic), noise_type_name(s.noise_type), s.snr_db, s.hrtf_index, s.head_scale,
               s.speech_tilt_db_per_octave, ex.n_images);
  std::fclose(f);
}

// Classic DoA estimates for every example of a shard, one predictions_<method>.csv per method (same
// columns as btrain eval's predictions.csv), steered with the shard's own HRTF set unless --sofa is given.
void run_doa(const std::string& shard, const std::vector<std::string>& method_names, const std::string& sofa_flag,
             bool full, const std::string& report, int threads, bool on_gpu) {
  std::vector<ClassicMethod> methods;
  for (const auto& m : method_names) methods.push_back(classic_method(m));
  const ShardReader reader(shard);
  Config cfg;
  apply_config_text(cfg, reader.info().config_yaml, "shard '" + shard + "'");
  const std::string sofa = sofa_flag.empty() ? cfg.hrtf.sofa.front() : sofa_flag;
  const HrirGrid grid = load_hrir_grid(sofa, reader.info().fs_hz, 1.0, 5.0,
                                       sofa_flag.empty() ? "the shard's hrtf.sofa or give --sofa" : "--sofa");
  const ClassicDoa doa(grid, cfg.features, full, 1.0);
  std::error_code ec;
  std::filesystem::create_directories(report, ec);
  if (ec) throw InputError("cannot create --report folder '" + report + "': " + ec.message());
  const long long N = reader.info().n_examples;
  const int T = reader.info().n_samples;
  std::vector<float> az, snr, t60, anechoic, noise;
  reader.read("scene/azimuth_deg", 0, int(N), az);
  reader.read("scene/snr_db", 0, int(N), snr);
  reader.read("scene/t60_s", 0, int(N), t60);
  reader.read("scene/anechoic", 0, int(N), anechoic);
  reader.read("scene/noise_type", 0, int(N), noise);
  const std::vector<double> example = reader.example_indices(0, int(N));
  std::vector<std::vector<double>> est(methods.size(), std::vector<double>(size_t(N)));
  // On the GPU every method comes out of one pass (kernels/doa_gpu.h); the CPU runs the requested ones on one
  // STFT per example.
  const int block = on_gpu ? 256 : 64;
  const cuda::DoaBatchFn gpu = on_gpu ? cuda::make_gpu_doa(doa, block, T) : cuda::DoaBatchFn{};
  std::vector<float> audio;
  Progress progress(N, "examples", false);
  for (long long start = 0; start < N; start += block) {
    const int count = int(std::min<long long>(block, N - start));
    reader.read("augmented", start, count, audio);
    if (gpu) {
      const auto choice = gpu(audio.data(), count);
      for (int i = 0; i < count; ++i)
        for (size_t m = 0; m < methods.size(); ++m)
          est[m][size_t(start + i)] = doa.candidates()[size_t(choice[size_t(i)][size_t(int(methods[m]))])];
      progress.update(start + count);
      if (g_stop_requested) throw Interrupted("interrupted; no predictions written");
      continue;
    }
    parallel_for(count, threads, [&](int i) {
      const float* l = audio.data() + size_t(i) * 2 * T;
      const std::vector<double> e = doa.estimate(methods, l, l + T, T);
      for (size_t m = 0; m < methods.size(); ++m) est[m][size_t(start + i)] = e[m];
    });
    progress.update(start + count);
    if (g_stop_requested) throw Interrupted("interrupted; no predictions written");
  }
  progress.finish();
  for (size_t m = 0; m < methods.size(); ++m) {
    const std::string path = (std::filesystem::path(report) / ("predictions_" + method_names[m] + ".csv")).string();
    std::ofstream csv(path);
    if (!csv) throw InputError("cannot write '" + path + "'");
    csv << "azimuth_deg,predicted_deg,abs_error_deg,snr_db,t60_s,noise_type,example_index\n";
    double sum = 0;
    for (long long i = 0; i < N; ++i) {
      const double err = azimuth_error_deg(est[m][size_t(i)], az[size_t(i)]);
      sum += err;
      csv << az[size_t(i)] << "," << est[m][size_t(i)] << "," << err << "," << snr[size_t(i)] << ","
          << (anechoic[size_t(i)] != 0 ? 0.0f : t60[size_t(i)]) << "," << int(noise[size_t(i)]) << ","
          << static_cast<long long>(example[size_t(i)]) << "\n";
    }
    std::printf("%-15s MAE %.2f deg over %lld examples -> %s\n", method_names[m].c_str(), sum / double(N), N, path.c_str());
  }
}

extern "C" void on_signal(int) { g_stop_requested = true; }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bsim: binaural room simulation for spatial-hearing training data"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("bsim ") + BSIM_VERSION);

  ConfigFlags gen_cfg, render_cfg, show_cfg;
  GenerateOptions gen;
  std::string device = "cpu";
  auto* g = app.add_subcommand("generate", "render N examples into an HDF5 shard");
  g->add_option("--rooms", gen.rooms, "number of examples (each a new room and scene)")->required();
  g->add_option("--out", gen.out, "output .h5 file")->required();
  g->add_option("--device", device, "cpu | cuda | cuda:N (cuda: the launcher's LOCAL_RANK or SLURM_LOCALID, else 0)")
      ->capture_default_str();
  int gpu_batch = 256;
  g->add_option("--batch", gpu_batch, "examples per GPU batch (--device cuda)")->capture_default_str();
  g->add_flag("--resume", gen.resume, "continue an interrupted run from <out>.partial");
  g->add_flag("--force", gen.force, "overwrite an existing output file");
  g->add_flag("--quiet", gen.quiet, "no config table or progress");
  long long first_index = 0;
  auto* first_index_opt =
      g->add_option("--first-index", first_index,
                    "global index of the first example (default: RANK x rooms when RANK or SLURM_PROCID is set, else 0)");
  add_config_flags(g, gen_cfg);

  std::string render_dir;
  long long render_count = 4, render_start = 0;
  auto* r = app.add_subcommand("render", "write a few examples as WAV files to listen to");
  r->add_option("--out-dir", render_dir, "folder for the WAV files (created)")->required();
  r->add_option("--count", render_count, "number of examples")->capture_default_str();
  r->add_option("--start", render_start, "index of the first example")->capture_default_str();
  add_config_flags(r, render_cfg);

  std::string info_path;
  auto* info = app.add_subcommand("info", "summarise an HDF5 shard");
  info->add_option("file", info_path, "shard file")->required();

  std::string rir_room, rir_lis, rir_src, rir_out, rir_sofa, rir_absorption = "eyring";
  double rir_t60 = 0.5, rir_yaw = 0, rir_fs = 16000;
  int rir_order = -1, rir_half_width = 16;
  bool rir_omni = false;
  auto* rir = app.add_subcommand("rir", "render one room impulse response (BRIR or omnidirectional) to WAV");
  rir->add_option("--room", rir_room, "room size Lx,Ly,Lz in m")->required();
  rir->add_option("--listener", rir_lis, "receiver position x,y,z in m")->required();
  rir->add_option("--source", rir_src, "source position x,y,z in m")->required();
  rir->add_option("--t60", rir_t60, "reverberation time in s")->capture_default_str();
  rir->add_option("--yaw", rir_yaw, "head yaw in degrees, CCW from +x")->capture_default_str();
  rir->add_option("--fs", rir_fs, "sample rate in Hz")->capture_default_str();
  rir->add_option("--sofa", rir_sofa, "SOFA file (default: the embedded MIT KEMAR)");
  rir->add_flag("--omni", rir_omni, "omnidirectional receiver (one channel, no HRTF)");
  rir->add_option("--max-order", rir_order, "images up to this reflection order and no late tail");
  rir->add_option("--absorption", rir_absorption, "eyring | sabine")->capture_default_str();
  rir->add_option("--frac-delay-half-width", rir_half_width, "windowed-sinc half width")->capture_default_str();
  rir->add_option("--out", rir_out, "output WAV (32-bit float)")->required();

  std::string doa_shard, doa_sofa, doa_report;
  std::vector<std::string> doa_methods{"gcc_phat", "srp_phat", "music", "gcc_phat_frames", "srp_phat_frames"};
  bool doa_full = false;
  int doa_threads = 0;
  auto* doa_cmd = app.add_subcommand("doa", "classic DoA estimates (GCC-PHAT, SRP-PHAT, MUSIC) for every example of a shard");
  doa_cmd->add_option("--shards", doa_shard, "shard to evaluate")->required();
  doa_cmd->add_option("--methods", doa_methods, "gcc_phat, srp_phat, music, gcc_phat_frames, srp_phat_frames (doa/classic.h)")->delimiter(',')->capture_default_str();
  doa_cmd->add_option("--sofa", doa_sofa, "steering HRTF set (default: the shard's own)");
  doa_cmd->add_flag("--full-circle", doa_full, "candidates over [-180, 180) instead of [-90, 90]");
  doa_cmd->add_option("--report", doa_report, "folder for predictions_<method>.csv")->required();
  doa_cmd->add_option("--threads", doa_threads, "threads (0 = all cores)");
  std::string doa_device = "cpu";
  doa_cmd->add_option("--device", doa_device, "cpu | cuda | cuda:N")->capture_default_str();

  auto* cfg_cmd = app.add_subcommand("config", "print the resolved configuration as YAML");
  add_config_flags(cfg_cmd, show_cfg);
  auto* help_cfg = app.add_subcommand("help-config", "list every configuration key with its default");
  auto* devices = app.add_subcommand("devices", "list the CUDA devices this build can use");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  return run_reporting_errors("bsim", [&]() -> int {
    if (*g) {
      if (gpu_batch < 1) throw InputError("--batch must be at least 1 (examples per GPU batch)");
      // Every rank of a launch runs the same command line: {rank} in --out gives each its own file.
      const Launch launch = launch_from_env();
      if (gen.out.find("{rank}") != std::string::npos) {
        for (size_t at; (at = gen.out.find("{rank}")) != std::string::npos;)
          gen.out.replace(at, 6, std::to_string(std::max(launch.rank, 0LL)));
      } else if (launch.world > 1) {
        throw InputError(launch.rank_var + "=" + std::to_string(launch.rank) + " of " + std::to_string(launch.world) +
                         ": every rank would write '" + gen.out + "': put {rank} in --out (for example shards_{rank}.h5)");
      }
      const bool on_gpu = require_device(device, gen.quiet) >= 0;
      const Config cfg = resolve_config(gen_cfg);
      print_config(cfg, gen.quiet);
      gen.first_index = first_index;
      if (first_index_opt->count() == 0 && launch.rank >= 0) {
        gen.first_index = launch.rank * gen.rooms;
        if (!gen.quiet)
          std::fprintf(stderr, "%s=%lld: examples %lld..%lld\n", launch.rank_var.c_str(), launch.rank, gen.first_index,
                       gen.first_index + gen.rooms - 1);
      }
      if (on_gpu) {
        generate_shard(cfg, gen, [&](const Renderer& r) { return cuda::make_cuda_backend(r, gpu_batch); });
      } else {
        generate_shard(cfg, gen);
      }
    } else if (*r) {
      const Config cfg = resolve_config(render_cfg);
      if (render_count < 1) throw InputError("--count must be at least 1");
      std::error_code ec;
      std::filesystem::create_directories(render_dir, ec);
      if (ec) throw InputError("cannot create --out-dir '" + render_dir + "': " + ec.message());
      const Renderer renderer(cfg);
      for (long long i = 0; i < render_count; ++i) {
        const Example ex = renderer.render(uint64_t(render_start + i));
        write_example_wavs(ex, render_dir, cfg.sample_rate_hz);
        std::fprintf(stderr, "example %lld: azimuth %.1f deg, T60 %.2f s, %s noise at %.1f dB SNR\n",
                     render_start + i, ex.scene.azimuth_deg, ex.scene.t60_s, noise_type_name(ex.scene.noise_type),
                     ex.scene.snr_db);
      }
      std::fprintf(stderr, "wrote %lld examples to %s\n", render_count, render_dir.c_str());
    } else if (*info) {
      return run_info(info_path);
    } else if (*rir) {
      if (rir_absorption != "eyring" && rir_absorption != "sabine")
        throw InputError("--absorption must be eyring or sabine");
      if (!(rir_t60 > 0)) throw InputError("--t60 must be positive");
      if (!(rir_fs >= 8000 && rir_fs <= 192000)) throw InputError("--fs must be within 8000..192000 Hz");
      if (rir_half_width < 2 || rir_half_width > 128) throw InputError("--frac-delay-half-width must be within 2..128");
      const auto L = parse_triple(rir_room, "--room"), p = parse_triple(rir_lis, "--listener"),
                 s = parse_triple(rir_src, "--source");
      BrirRequest req;
      req.room.size_m = {L[0], L[1], L[2]};
      if (!(L[0] > 0 && L[1] > 0 && L[2] > 0)) throw InputError("--room sizes must be positive");
      const double beta = reflection_coefficient(req.room.size_m, rir_t60,
                                                 rir_absorption == "sabine" ? AbsorptionModel::sabine
                                                                            : AbsorptionModel::eyring);
      for (double& b : req.room.beta) b = beta;
      req.listener_m = {p[0], p[1], p[2]};
      req.source_m = {s[0], s[1], s[2]};
      req.yaw_deg = rir_yaw;
      req.t60_s = rir_t60;
      req.fs_hz = rir_fs;
      req.frac_delay_half_width = rir_half_width;
      if (rir_order >= 0) req.late_tail = false, req.image_limit.max_order = rir_order;
      const double head_radius = HrtfConfig{}.head_radius_m;
      if (!rir_omni && std::hypot(s[0] - p[0], s[1] - p[1], s[2] - p[2]) <= head_radius)
        throw InputError("--source is closer to the listener than the head radius (" + std::to_string(head_radius) + " m)");
      Rng tail(1234, 0, Stream::tail);
      Brir b;
      if (rir_omni) {
        render_brir(req, nullptr, nullptr, tail, b);
      } else {
        const std::string sofa = rir_sofa.empty() ? HrtfConfig{}.sofa.front() : rir_sofa;
        const HrirGrid grid = load_hrir_grid(sofa, rir_fs, 2.0, 5.0, "--sofa");
        const DiffuseField df = compute_diffuse_field(grid);
        render_brir(req, &grid, &df, tail, b);
      }
      std::vector<const float*> ch{b.response[0].data()};
      if (b.channels == 2) ch.push_back(b.response[1].data());
      write_wav(rir_out, ch, b.length, rir_fs);
      std::fprintf(stderr, "wrote %s: %d channel(s), %d samples, %d images, direct path %.3f ms at gain %.5f\n",
                   rir_out.c_str(), b.channels, b.length, b.n_images, b.direct_delay_s * 1e3, b.direct_gain);
    } else if (*doa_cmd) {
      const bool on_gpu = require_device(doa_device, false) >= 0;
      run_doa(doa_shard, doa_methods, doa_sofa, doa_full, doa_report, resolve_threads(doa_threads), on_gpu);
    } else if (*cfg_cmd) {
      std::printf("%s", to_yaml(resolve_config(show_cfg)).c_str());
    } else if (*help_cfg) {
      std::printf("configuration keys (YAML file via --config, or --set key=value):\n%s", describe_keys().c_str());
    } else if (*devices) {
      std::string why;
      const auto list = cuda::list_devices(&why);
      if (list.empty()) std::printf("no CUDA devices: %s\n", why.c_str());
      for (const auto& d : list) std::printf("%s\n", d.c_str());
    }
    return 0;
  });
}
