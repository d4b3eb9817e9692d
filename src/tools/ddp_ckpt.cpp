// ddp_ckpt: inspect, verify and convert ddp-trainer checkpoints.
//   ddp_ckpt info FILE                 validate and describe (exit 4 if invalid)
//   ddp_ckpt export FILE OUT.safetensors [--average]

#include <CLI/CLI.hpp>
#include <algorithm>
#include <iostream>

#include "core/error.h"
#include "nn/torch_layout.h"
#include "train/checkpoint.h"
#include "train/safetensors.h"

namespace {

using namespace ddp;

void print_info(const std::string& path) {
  const TrainingState s = decode_checkpoint(read_file_bytes(path), path);
  std::cout << path << ": valid ddp-trainer checkpoint, format version " << kCheckpointVersion
            << "\n  position: epoch " << s.epoch << ", step " << s.step_in_epoch << " in epoch, "
            << s.completed_steps << " steps completed\n  run: " << s.world_size << " rank(s), "
            << s.batch_mode << " batch, global batch " << s.global_batch << ", seed " << s.seed
            << "\n  optimizer: " << s.optimizer << ", " << s.optimizer_steps << " steps";
  for (const auto& [name, values] : s.optimizer_state) std::cout << ", " << name;
  std::cout << "\n  parameters: " << s.params.size() << "\n";
  for (const TensorSignature& t : s.signature)
    std::cout << "    " << t.name << " " << t.shape.str() << "\n";
  if (!s.buffers.empty()) std::cout << "  running statistics: " << s.buffers.size() << "\n";
  for (const TensorSignature& t : s.buffer_signature)
    std::cout << "    " << t.name << " " << t.shape.str() << "\n";
  // Note [callback state]
  for (const auto& [name, state] : s.callbacks) std::cout << "  " << name << ": " << state << "\n";
  if (!s.best_params.empty())
    std::cout << "  best epoch's weights: " << s.best_params.size() << " parameters\n";
}

// `average`: the optimizer's moving average of the parameters in their place (Note [weight
// average]: the weights a run with use_ema would end with were it to end here).
void export_weights(const std::string& path, const std::string& out, bool average) {
  TrainingState s = decode_checkpoint(read_file_bytes(path), path);
  if (average) {
    const auto kept = std::find_if(s.optimizer_state.begin(), s.optimizer_state.end(),
                                   [](const auto& state) { return state.first == "average"; });
    if (kept == s.optimizer_state.end())
      throw CheckpointError(path +
                            ": holds no weight average (its run did not set "
                            "optimizer.use_ema)");
    s.params = kept->second;
  }
  // In PyTorch's layout and names, as ddp_train --export-safetensors writes them.
  std::vector<NamedTensor> tensors;
  for (const auto& [signature, values] :
       {std::pair{&s.signature, &s.params}, std::pair{&s.buffer_signature, &s.buffers}}) {
    size_t offset = 0;
    for (const TensorSignature& t : *signature) {
      const auto count = static_cast<size_t>(t.shape.numel());
      if (!s.layouts_recorded && t.shape.rank() == 4)
        throw CheckpointError(path + ": " + t.name + " is a convolution weight, and this " +
                              "checkpoint predates the layout record an export needs; resume it " +
                              "with ddp_train --resume-from FILE --stop-after 0 " +
                              "--export-safetensors OUT instead");
      const ParamEntry entry{0, t.name, t.shape, offset, count, t.hwc};
      tensors.push_back({t.name, torch_shape(entry),
                         to_torch_layout(entry, std::span(*values).subspan(offset, count))});
      offset += count;
    }
  }
  write_safetensors(
      out, tensors,
      {{"format", "pt"}, {"producer", "ddp-trainer"}, {"step", std::to_string(s.completed_steps)}});
  std::cout << "wrote " << out << " (" << tensors.size() << " tensors)\n";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ddp_ckpt: inspect and convert ddp-trainer checkpoints"};
  app.require_subcommand(1);
  std::string file, out;
  auto* info = app.add_subcommand("info", "Validate a checkpoint and describe it");
  info->add_option("file", file, "Checkpoint file")->required();
  auto* exporter = app.add_subcommand("export", "Write the weights as a safetensors file");
  exporter->add_option("file", file, "Checkpoint file")->required();
  exporter->add_option("out", out, "Output .safetensors file")->required();
  bool average = false;
  exporter->add_flag("--average", average,
                     "The optimizer's moving average of the weights (optimizer.use_ema) in their "
                     "place");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (*info) print_info(file);
    if (*exporter) export_weights(file, out, average);
  } catch (const Error& e) {
    std::cerr << "ddp_ckpt: error: " << e.what() << std::endl;
    return static_cast<int>(e.code());
  }
  return 0;
}
