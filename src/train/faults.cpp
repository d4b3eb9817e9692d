#include "train/faults.h"

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "train/trainer.h"

namespace ddp {

Fault parse_fault(const std::string& spec) {
  auto fail = [&spec](const std::string& why) {
    return ConfigError("--fault-inject '" + spec + "': " + why);
  };
  const size_t at = spec.find('@');
  Fault f;
  f.kind = spec.substr(0, at);
  if (f.kind != "stall" && f.kind != "kill" && f.kind != "perturb")
    throw fail("unknown fault '" + f.kind + "' (stall, kill, perturb)");
  std::stringstream fields(at == std::string::npos ? "" : spec.substr(at + 1));
  for (std::string field; std::getline(fields, field, ',');) {
    const size_t eq = field.find('=');
    if (eq == std::string::npos) throw fail("expected key=value, got '" + field + "'");
    const std::string key = field.substr(0, eq), value = field.substr(eq + 1);
    try {
      if (key == "rank")
        f.rank = std::stoi(value);
      else if (key == "step")
        f.step = std::stoll(value);
      else if (key == "seconds")
        f.seconds = std::stod(value);
      else if (key == "once")
        f.once = value;
      else
        throw fail("unknown key '" + key + "'");
    } catch (const std::logic_error&) {
      throw fail("bad value for " + key + ": '" + value + "'");
    }
  }
  return f;
}

void inject_faults(const std::vector<Fault>& faults, int rank, int64_t step, Trainer& trainer) {
  for (const Fault& f : faults) {
    if (f.rank != rank || f.step != step) continue;
    if (!f.once.empty()) {
      if (std::filesystem::exists(f.once)) continue;
      std::ofstream(f.once) << "fired at step " << step << "\n";
    }
    if (f.kind == "stall") {
      std::this_thread::sleep_for(std::chrono::duration<double>(f.seconds));
    } else if (f.kind == "kill") {
      ::raise(SIGKILL);
    } else {
      std::vector<float> params = trainer.params_to_host();
      params[params.size() / 2] += 1e-3f;
      trainer.load_params(params, trainer.buffers_to_host());
    }
  }
}

}  // namespace ddp
