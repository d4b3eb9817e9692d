// ddp_train: data-parallel training of a sequential network, one process per rank under mpirun.
// Only this file turns errors into messages and exit codes.

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "comm/agreement.h"
#include "comm/host_layout.h"
#include "comm/launch.h"
#include "comm/watchdog.h"
#include "core/error.h"
#include "train/checkpoint.h"
#include "train/faults.h"
#include "train/model_weights.h"
#include "train/run_checkpoints.h"
#include "train/safetensors.h"
#include "train/session.h"
#include "train/trainer.h"

namespace {

using namespace ddp;

struct Options {
  std::string config;
  std::vector<std::string> overrides;
  std::string run_dir;
  std::string progress = "auto";
  bool resume = false;
  std::string resume_from;
  int64_t stop_after = -1;
  std::string init_from;
  std::string export_safetensors;
  std::string predict_out;
  bool restart = false;
  std::vector<std::string> faults;
};

// Open MPI hands every rank a pseudo-terminal even when mpirun's own output goes to a file or a
// pipe, so under mpirun "auto" cannot tell a person from a log: it prints plain progress lines,
// every ProgressBar::kLineInterval of a long epoch, which read well in both.
ProgressMode progress_mode(const std::string& mode) {
  if (mode == "on") return ProgressMode::kBar;
  if (mode == "lines") return ProgressMode::kLines;
  if (mode == "off") return ProgressMode::kOff;
  const bool terminal = isatty(STDOUT_FILENO) && std::getenv("OMPI_COMM_WORLD_SIZE") == nullptr;
  return terminal ? ProgressMode::kBar : ProgressMode::kLines;
}

std::string rank_prefix(const Communicator& comm) {
  if (comm.size() == 1) return "";
  return "[rank " + std::to_string(comm.rank()) + " on " + this_host() + "] ";
}

// One write per line, so lines of several ranks never interleave.
void print_error(const Communicator& comm, const std::string& message) {
  const std::string line = rank_prefix(comm) + "ddp_train: error: " + message + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

std::string checkpoint_dir(const Config& config, const Options& options) {
  return config.checkpoint.dir.empty() ? options.run_dir + "/checkpoints" : config.checkpoint.dir;
}

// "20261130-125501": names what --restart moves aside.
std::string timestamp() {
  const std::time_t now = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof text, "%Y%m%d-%H%M%S", std::gmtime(&now));
  return text;
}

// Rank 0, before anything is written or loaded: combinations that could only fail after training
// fail now, and a fresh run never mixes with an earlier run's checkpoints (which --resume would
// otherwise pick up later): it is refused, or with --restart the earlier checkpoints and metrics
// are moved aside.
void validate_start(const Config& config, const Options& options) {
  if (!options.predict_out.empty() && !config.test_data)
    throw ConfigError(options.config + ": --predict-out needs a test split (data.test)");
  if (options.resume || !options.resume_from.empty()) return;
  const std::string dir = checkpoint_dir(config, options);
  std::error_code ec;
  bool earlier = false;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec))
    earlier = earlier || entry.path().extension() == ".ddpc" || entry.path().filename() == "latest";
  if (!earlier) return;
  if (!options.restart)
    throw ConfigError(dir +
                      ": holds checkpoints of an earlier run; continue it with --resume, or "
                      "start over with --restart (moves them aside)");
  const std::string stamp = timestamp();
  const std::string moved = dir + "-replaced-" + stamp;
  std::filesystem::rename(dir, moved, ec);
  if (ec) throw RuntimeError(dir + ": cannot move aside for --restart: " + ec.message());
  const std::string metrics = options.run_dir + "/metrics.jsonl";
  if (std::filesystem::exists(metrics))
    std::filesystem::rename(metrics, options.run_dir + "/metrics-replaced-" + stamp + ".jsonl", ec);
  std::cout << "restart: moved the earlier run's checkpoints to " << moved << std::endl;
}

// One CSV row per test sample: the model's outputs, then the label (or target values).
void write_predictions(const std::string& path, Trainer& trainer,
                       const std::vector<float>& outputs) {
  const Dataset& test = *trainer.test_data();
  const auto classes = static_cast<size_t>(trainer.model().output_cols());
  std::ofstream out(path, std::ios::trunc);
  out.precision(9);
  const auto width = static_cast<size_t>(test.label_width);  // several labels: label0, label1..
  for (size_t c = 0; c < classes; ++c) out << "p" << c << ",";
  const char* const target = test.real_valued() ? "target" : "label";
  for (size_t j = 0; j < width; ++j)
    out << target << (width > 1 ? std::to_string(j) : "") << (j + 1 < width ? "," : "\n");
  const auto samples = static_cast<size_t>(test.size());
  for (size_t i = 0; i < samples; ++i) {
    for (size_t c = 0; c < classes; ++c) out << outputs[i * classes + c] << ",";
    for (size_t j = 0; j < width; ++j) {
      if (test.real_valued())
        out << test.values[i * width + j];
      else
        out << test.labels[i * width + j];
      out << (j + 1 < width ? "," : "\n");
    }
  }
  out.close();
  if (!out) throw RuntimeError(path + ": cannot write predictions");
  std::cout << "wrote predictions for " << samples << " test samples to " << path << std::endl;
}

// `training` turns true once every rank has passed setup; errors after that may be one rank's.
int train(Communicator& world, const Options& options, bool& training) {
  std::vector<Fault> faults;
  run_agreed(world, [&] {
    for (const std::string& spec : options.faults) faults.push_back(parse_fault(spec));
  });
  int hosts = 1;
  const std::string layout = describe_hosts(world, hosts);
  if (world.rank() == 0 && hosts > 1) std::cout << "hosts: " << layout << std::endl;
  error_line_prefix() = rank_prefix(world);
  // Every collective from here on runs under the watchdog (armed once the config is read).
  Watchdog watchdog(0, rank_prefix(world), {}, hosts > 1 ? layout : "");
  const std::unique_ptr<Communicator> guarded = watched(world, watchdog);
  Communicator& comm = *guarded;
  Session session = open_session(
      comm, options.config, options.overrides, options.run_dir, &watchdog,
      [&](const Config& c) { validate_start(c, options); },
      comm.rank() == 0 ? &std::cout : nullptr);
  watchdog.set_timeout(session.config.training.collective_timeout_s);
  const Config& config = session.config;
  Trainer& trainer = *session.trainer;
  const bool lead = comm.rank() == 0;
  if (lead)
    std::cout << "ddp-trainer: " << comm.size() << " rank(s), " << session.backend->name()
              << " backend, config " << options.config << ", run dir " << options.run_dir
              << std::endl;
  if (!options.init_from.empty())
    load_named_weights(
        comm, trainer, [&] { return read_safetensors(options.init_from); }, options.init_from);
  if (options.resume || !options.resume_from.empty())
    resume_run(comm, trainer, config, checkpoint_dir(config, options), options.resume_from,
               lead ? &std::cout : nullptr);
  if (lead && trainer.stopped_early())
    std::cout << "resume: early stopping ended the run; nothing to train" << std::endl;
  else if (lead && trainer.complete())
    std::cout << "resume: the run is already complete (" << config.training.epochs << " of "
              << config.training.epochs << " epochs); nothing to train" << std::endl;

  write_checkpoints(comm, trainer, config.checkpoint, checkpoint_dir(config, options),
                    lead ? &std::cout : nullptr);
  trainer.set_reporting(lead ? &std::cout : nullptr, progress_mode(options.progress),
                        lead ? options.run_dir : "");
  trainer.set_step_observer([&](int64_t step) {
    watchdog.set_step(step + 1);
    if (!faults.empty()) inject_faults(faults, comm.rank(), step, trainer);
  });
  training = true;
  const auto start = std::chrono::steady_clock::now();
  trainer.fit(options.stop_after);
  if (lead)
    std::cout
        << format_summary(
               trainer.epoch_records(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count())
        << "outputs: " << options.run_dir << "/ (config.yaml, metrics.jsonl"
        << (config.logging.tensorboard ? ", tensorboard/" : "") << "), checkpoints in "
        << checkpoint_dir(config, options) << std::endl;
  if (!options.predict_out.empty()) {
    const std::vector<float> outputs = trainer.predict(*trainer.test_data());
    run_agreed(comm, [&] {
      if (lead) write_predictions(options.predict_out, trainer, outputs);
    });
  }
  if (!options.export_safetensors.empty()) {
    run_agreed(comm, [&] {
      if (!lead) return;
      write_safetensors(options.export_safetensors, named_weights(trainer),
                        {{"format", "pt"}, {"producer", "ddp-trainer"}});
      std::cout << "exported weights to " << options.export_safetensors << std::endl;
    });
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::unique_ptr<MpiRuntime> mpi;
  const std::unique_ptr<Communicator> comm = connect_or_exit(&argc, &argv, mpi, "ddp_train");

  CLI::App app{"ddp_train: data-parallel training of sequential networks (run under mpirun)"};
  Options options;
  app.set_version_flag("--version", "ddp_train (ddp-trainer) " DDP_VERSION);
  app.add_option("-c,--config", options.config, "YAML config file")->required();
  app.add_option("--set", options.overrides,
                 "Override a config key: section.key=value (repeatable; list items by index, "
                 "e.g. model.layers.0.units=128)");
  app.add_option("--run-dir", options.run_dir,
                 "Directory for the resolved config, metrics.jsonl and checkpoints "
                 "(default: runs/<config name>)");
  app.add_option(
         "--progress", options.progress,
         "Progress inside epochs on rank 0: on (a live bar), lines (a line every 10 s of a long "
         "epoch), off; auto: a bar on a terminal outside mpirun, else lines")
      ->check(CLI::IsMember({"auto", "on", "lines", "off"}));
  auto* resume_flag = app.add_flag(
      "--resume", options.resume,
      "Continue from the newest valid checkpoint of the run directory (fresh start if none)");
  auto* resume_from =
      app.add_option("--resume-from", options.resume_from, "Continue from this checkpoint file")
          ->excludes(resume_flag);
  app.add_flag("--restart", options.restart,
               "Start over in a run directory that holds an earlier run's checkpoints (they and "
               "metrics.jsonl are moved aside)")
      ->excludes(resume_flag)
      ->excludes(resume_from);
  app.add_option("--stop-after", options.stop_after,
                 "Stop after this many optimizer steps in total, writing a checkpoint")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--init-from", options.init_from,
                 "Start from the weights of a safetensors file (names layers.<k>.weight/bias)");
  app.add_option("--export-safetensors", options.export_safetensors,
                 "After training, write the weights as a safetensors file");
  app.add_option("--predict-out", options.predict_out,
                 "After training, write the model's outputs for the test split as CSV");
  app.add_option("--fault-inject", options.faults,
                 "Testing only: stall@rank=R,step=S,seconds=T | kill@rank=R,step=S[,once=FILE] | "
                 "perturb@rank=R,step=S");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    if (comm->rank() == 0) app.exit(e);
    return 0;
  } catch (const CLI::CallForVersion& e) {
    if (comm->rank() == 0) app.exit(e);
    return 0;
  } catch (const CLI::ParseError& e) {
    // Every rank parsed the same command line: one of them says so.
    if (comm->rank() == 0) print_error(*comm, std::string(e.what()) + " (see --help)");
    return static_cast<int>(ExitCode::kUsage);
  }
  if (options.run_dir.empty())
    options.run_dir = "runs/" + std::filesystem::path(options.config).stem().string();

  // Setup failures are agreed on by all ranks (run_agreed), so every rank leaves normally with
  // the same exit code. A failure during training may be one rank's alone: that rank ends the
  // whole job so no other rank waits forever in a collective.
  bool training = false;
  try {
    return train(*comm, options, training);
  } catch (const PeerError& e) {
    return static_cast<int>(e.code());
  } catch (const Error& e) {
    // An error every rank knows of is printed once, by the rank chosen to report it.
    if (!e.agreed() || e.reporter() == comm->rank()) print_error(*comm, e.what());
    if (training && !e.agreed()) comm->abort(static_cast<int>(e.code()));
    return static_cast<int>(e.code());
  } catch (const std::exception& e) {
    print_error(*comm, e.what());
    comm->abort(static_cast<int>(ExitCode::kRuntime));
  }
}
