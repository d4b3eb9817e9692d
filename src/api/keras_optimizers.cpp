// The C++ API's optimizers (Note [C++ API]): Keras' names and defaults, each by Keras' rule.

#include "api/keras.h"
#include "api/spec_map.h"

namespace ddp::keras {
namespace {

// Keras' rule of `type` at `learning_rate` with the settings `more`.
Spec keras_rule(const char* type, double learning_rate, double weight_decay,
                std::initializer_list<std::pair<const char*, YAML::Node>> more) {
  Spec spec{spec_map({{"type", YAML::Node(type)},
                      {"rule", YAML::Node("keras")},
                      {"learning_rate", YAML::Node(learning_rate)},
                      {"weight_decay", YAML::Node(weight_decay)}})};
  for (const auto& [key, value] : more) spec.node[key] = value;
  return spec;
}

}  // namespace

Spec Adam(double learning_rate, double beta_1, double beta_2, double epsilon) {
  return {spec_map({{"type", YAML::Node("adam")},
                    {"rule", YAML::Node("keras")},
                    {"learning_rate", YAML::Node(learning_rate)},
                    {"beta1", YAML::Node(beta_1)},
                    {"beta2", YAML::Node(beta_2)},
                    {"epsilon", YAML::Node(epsilon)}})};
}
Spec AdamW(double learning_rate, double weight_decay, double beta_1, double beta_2,
           double epsilon) {
  Spec adamw = Adam(learning_rate, beta_1, beta_2, epsilon);
  adamw.node["type"] = "adamw";
  adamw.node["weight_decay"] = weight_decay;
  return adamw;
}
Spec SGD(double learning_rate, double momentum, bool nesterov, double weight_decay) {
  return {spec_map({{"type", YAML::Node("sgd")},
                    {"rule", YAML::Node("keras")},
                    {"learning_rate", YAML::Node(learning_rate)},
                    {"momentum", YAML::Node(momentum)},
                    {"nesterov", YAML::Node(nesterov)},
                    {"weight_decay", YAML::Node(weight_decay)}})};
}
Spec RMSprop(double learning_rate, double rho, double momentum, double epsilon, bool centered,
             double weight_decay) {
  return {spec_map({{"type", YAML::Node("rmsprop")},
                    {"rule", YAML::Node("keras")},
                    {"learning_rate", YAML::Node(learning_rate)},
                    {"rho", YAML::Node(rho)},
                    {"momentum", YAML::Node(momentum)},
                    {"epsilon", YAML::Node(epsilon)},
                    {"centered", YAML::Node(centered)},
                    {"weight_decay", YAML::Node(weight_decay)}})};
}

Spec Adagrad(double learning_rate, double initial_accumulator_value, double epsilon,
             double weight_decay) {
  return keras_rule("adagrad", learning_rate, weight_decay,
                    {{"initial_accumulator_value", YAML::Node(initial_accumulator_value)},
                     {"epsilon", YAML::Node(epsilon)}});
}
Spec Adamax(double learning_rate, double beta_1, double beta_2, double epsilon,
            double weight_decay) {
  return keras_rule("adamax", learning_rate, weight_decay,
                    {{"beta1", YAML::Node(beta_1)},
                     {"beta2", YAML::Node(beta_2)},
                     {"epsilon", YAML::Node(epsilon)}});
}
Spec Nadam(double learning_rate, double beta_1, double beta_2, double epsilon,
           double weight_decay) {
  Spec spec = Adamax(learning_rate, beta_1, beta_2, epsilon, weight_decay);
  spec.node["type"] = "nadam";
  return spec;
}
Spec Lion(double learning_rate, double beta_1, double beta_2, double weight_decay) {
  return keras_rule("lion", learning_rate, weight_decay,
                    {{"beta1", YAML::Node(beta_1)}, {"beta2", YAML::Node(beta_2)}});
}
Spec with_weight_average(Spec optimizer, double ema_momentum, int64_t ema_overwrite_frequency) {
  optimizer.node.reset(YAML::Clone(optimizer.node));  // the caller's Spec stays as it was
  optimizer.node["use_ema"] = true;
  optimizer.node["ema_momentum"] = ema_momentum;
  optimizer.node["ema_overwrite_frequency"] = ema_overwrite_frequency;
  return optimizer;
}

}  // namespace ddp::keras
