// ddp_bench: steady-state training throughput of a config, with the step split into phases and
// every rank's peak memory. Run under mpirun like ddp_train; rank 0 prints (and writes) JSON.
//   mpirun -n 2 build/ddp_bench --config configs/w2_fmnist_mlp.yaml --warmup 50 --steps 300

#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "comm/agreement.h"
#include "comm/launch.h"
#include "core/error.h"
#include "nn/layer.h"
#include "train/session.h"

namespace {

using namespace ddp;

struct Options {
  std::string config;
  std::vector<std::string> overrides;
  std::string label;
  int64_t warmup = 50;
  int64_t steps = 200;
  std::string json;
  bool profile_backward = false;
};

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
}

// The first CPU of this process's affinity mask and how many it has.
std::pair<int, int> affinity() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return {-1, 0};
  int first = -1;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set) && first < 0) first = cpu;
  }
  return {first, CPU_COUNT(&set)};
}

nlohmann::json measure(Communicator& comm, const Options& options) {
  Session session = open_session(comm, options.config, options.overrides, "");
  Trainer& trainer = *session.trainer;
  trainer.train_steps(options.warmup);
  trainer.reset_phase_times();
  if (options.profile_backward) trainer.profile_backward();
  comm.barrier();
  const auto start = std::chrono::steady_clock::now();
  trainer.train_steps(options.steps);
  comm.barrier();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const PhaseTimes& t = trainer.phase_times();
  std::vector<double> phases = {t.data, t.forward,   t.backward,
                                t.comm, t.optimizer, t.backward_update};
  comm.all_reduce_sum(std::span<double>(phases));
  std::vector<double> rss(static_cast<size_t>(comm.size()), 0.0);
  rss[static_cast<size_t>(comm.rank())] = peak_rss_mb();
  comm.all_reduce_sum(std::span<double>(rss));
  // Where each rank ran, as its affinity mask: benchmark results record their binding.
  std::vector<double> binding(static_cast<size_t>(2 * comm.size()), 0.0);
  const auto [first_cpu, cpus] = affinity();
  binding[static_cast<size_t>(2 * comm.rank())] = first_cpu;
  binding[static_cast<size_t>(2 * comm.rank() + 1)] = cpus;
  comm.all_reduce_sum(std::span<double>(binding));
  std::vector<std::string> bound;
  for (size_t r = 0; r < binding.size(); r += 2) {
    bound.push_back(binding[r + 1] == 1 ? "cpu " + std::to_string(int(binding[r]))
                                        : std::to_string(int(binding[r + 1])) + " cpus from " +
                                              std::to_string(int(binding[r])));
  }

  const double per_step_ms = 1e3 / (static_cast<double>(options.steps) * comm.size());
  // When backward made each tensor's gradient final, averaged over steps and ranks: what the
  // scaling model (launch/ddp_scale.py) needs to know when each bucket could start.
  std::vector<double> ready = t.ready_after_backward_start;
  comm.all_reduce_sum(std::span<double>(ready));
  nlohmann::json ready_json = nlohmann::json::array();
  for (size_t i = 0; i < ready.size(); ++i)
    ready_json.push_back({{"offset", t.ready_offsets[i]}, {"ms", ready[i] * per_step_ms}});
  // Multiply-adds of a forward pass per sample, as 2 FLOPs each: every weight is used once per
  // output position (once for a Dense layer, out_h x out_w times for a convolution). The scaling
  // model turns this into GPU compute time.
  // A residual block's layers count one by one, each at its own output's positions.
  double forward_flops = 0;
  const std::function<void(const Layer&)> count = [&](const Layer& layer) {
    if (!layer.parts().empty()) {
      for (const auto& [prefix, part] : layer.parts()) count(*part);
      return;
    }
    const Shape out = layer.output_shape();
    const int64_t channels = out.dims().empty() ? 1 : std::max<int64_t>(out.dims().back(), 1);
    const auto positions = static_cast<double>(out.numel() / channels);
    for (const ParamSpec& p : layer.param_specs())
      forward_flops += 2.0 * static_cast<double>(p.shape.numel()) * positions;
  };
  for (const std::unique_ptr<Layer>& layer : trainer.model().layers()) count(*layer);
  nlohmann::json tensors = nlohmann::json::array();
  for (const ParamEntry& e : trainer.model().param_entries())
    tensors.push_back({{"name", e.name}, {"offset", e.offset}, {"count", e.count}});
  nlohmann::json buckets = nlohmann::json::array();
  for (const Bucket& b : trainer.grad_sync().buckets())
    buckets.push_back({{"offset", b.offset}, {"count", b.count}});
  const double samples = static_cast<double>(options.steps * trainer.global_batch());
  char host[256] = "unknown";
  gethostname(host, sizeof host);
  nlohmann::json result = {
      {"workload", options.label.empty() ? options.config : options.label},
      {"config", options.config},
      {"overrides", options.overrides},
      {"world_size", comm.size()},
      {"per_rank_batch", trainer.per_rank_batch()},
      {"global_batch", trainer.global_batch()},
      {"parameters", trainer.model().param_count()},
      {"warmup_steps", options.warmup},
      {"steps", options.steps},
      {"seconds", seconds},
      {"samples_per_sec", samples / seconds},
      {"step_ms", seconds * 1e3 / static_cast<double>(options.steps)},
      {"phase_ms",
       {{"data", phases[0] * per_step_ms},
        {"forward", phases[1] * per_step_ms},
        {"backward", phases[2] * per_step_ms},
        {"comm", phases[3] * per_step_ms},
        {"optimizer", phases[4] * per_step_ms}}},
      {"peak_rss_mb", rss},
      {"cpu_binding", bound},
      {"forward_flops_per_sample", forward_flops},
      {"tensors", tensors},
      {"buckets", buckets},
      {"optimizer_state_mb_per_rank",
       static_cast<double>(trainer.optimizer_state_bytes()) / (1024.0 * 1024.0)},
      {"backend", session.backend->name()},
      {"gradient_sync", trainer.grad_sync().describe()},
      {"update_in_backward", trainer.updates_in_backward()},
      {"host", host},
  };
  if (options.profile_backward) {
    // Part of backward, summed over the rank's threads (Note [update in backward]).
    result["phase_ms"]["backward_update"] = phases[5] * per_step_ms;
    result["ready_ms"] = ready_json;
  }
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  std::unique_ptr<MpiRuntime> mpi;
  const std::unique_ptr<Communicator> comm = connect_or_exit(&argc, &argv, mpi, "ddp_bench");
  CLI::App app{"ddp_bench: steady-state training throughput (run under mpirun)"};
  Options options;
  app.add_option("-c,--config", options.config, "YAML config file")->required();
  app.add_option("--set", options.overrides, "Override a config key: section.key=value");
  app.add_option("--label", options.label, "Workload name in the output");
  app.add_option("--warmup", options.warmup, "Untimed steps first")->check(CLI::NonNegativeNumber);
  app.add_option("--steps", options.steps, "Timed steps")->check(CLI::PositiveNumber);
  app.add_option("--json", options.json, "Also write the result to this file (rank 0)");
  app.add_flag("--profile-backward", options.profile_backward,
               "Also time the updates inside backward (phase_ms.backward_update) and when each "
               "gradient becomes final (ready_ms), at a few clock reads per tensor: ~3% of W1's "
               "step");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return comm->rank() == 0 ? app.exit(e) : static_cast<int>(ExitCode::kUsage);
  }
  try {
    const nlohmann::json result = measure(*comm, options);
    if (comm->rank() == 0) {
      std::cout << result.dump(2) << std::endl;
      if (!options.json.empty()) {
        std::ofstream out(options.json, std::ios::trunc);
        out << result.dump(2) << '\n';
        if (!out) throw RuntimeError(options.json + ": cannot write");
      }
    }
  } catch (const PeerError& e) {
    return static_cast<int>(e.code());
  } catch (const Error& e) {
    std::cerr << "ddp_bench: error: " << e.what() << std::endl;
    if (!e.agreed()) comm->abort(static_cast<int>(e.code()));
    return static_cast<int>(e.code());
  }
  return 0;
}
