#include "keras_methods.h"

#include <pybind11/eval.h>

namespace ddp::python {

void define_keras_methods(pybind11::module_& module) {
  // train_on_batch is a fit of one epoch of one batch (in x's order): the optimizer's moments
  // and step count go on from call to call, as every fit's do (Note [model state]); it returns
  // that batch's loss and metrics, as Keras 2's train_on_batch(reset_metrics=True) did.
  pybind11::exec(R"py(
class History(dict):
    """Keras' History: fit's record of each quantity per epoch, history["loss"] or, as in Keras,
    history.history["loss"]; history.epoch, the 0-based numbers of the epochs trained."""
    @property
    def history(self):
        return self


def _keras_form(values, return_dict):
    """Keras' forms of evaluated quantities: the loss alone, [loss, metrics...] or the dict."""
    if return_dict:
        return dict(values)
    return list(values.values()) if len(values) > 1 else next(iter(values.values()))


def _train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
    """Keras' train_on_batch: one optimizer step on the batch x (on every rank, the same x, split
    over the ranks as fit splits it); returns the batch's loss and metrics, as evaluate does."""
    ranks = size()  # a batch that does not split evenly trains as fit's last, smaller batch
    history = self.fit(x, y, batch_size=-(-len(x) // ranks) * ranks, epochs=1, verbose=0,
                       shuffle=False, sample_weight=sample_weight, class_weight=class_weight or {})
    return _keras_form({k: v[0] for k, v in history.items() if k != "learning_rate"},
                       return_dict)


def _test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
    """Keras' test_on_batch: evaluate on the batch x."""
    return self.evaluate(x, y, sample_weight=sample_weight, return_dict=return_dict)


def _predict_on_batch(self, x):
    """Keras' predict_on_batch: the outputs for the batch x, as predict gives them."""
    return self.predict(x)


def _call(self, x, training=False):
    """model(x): the outputs for x (a NumPy array), in inference mode."""
    if training:
        raise ConfigError("Sequential: model(x, training=True): only inference; train with fit "
                          "or train_on_batch")
    return self.predict(x)


class Layer:
    """A layer of model.layers, as Keras shows it: its name (Keras' automatic one: dense,
    dense_1, ...), get_weights() and set_weights() (its variables, in Keras' order and layouts)
    count_params() and trainable; type(layer).__name__ is Keras' class (Dense, Conv2D, ...). A view of
    the model, whose weights it reads and sets."""
    def __init__(self, model, index, name):
        self._model, self._index, self.name = model, index, name

    def get_weights(self):
        return list(self._model._keras_layer_variables()[self._index])

    def set_weights(self, weights):
        """Keras' layer.set_weights: its variables, in Keras' order and layouts (collective)."""
        self._model._set_keras_layer_variables(self._index, list(weights))

    def count_params(self):
        return sum(int(w.size) for w in self.get_weights())

    @property
    def trainable(self):
        return self._model._layer_trainable(self._index)

    @trainable.setter
    def trainable(self, value):
        # As in Keras, for the fit after the next compile() (Note [frozen layers]).
        self._model._set_layer_trainable(self._index, bool(value))

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


_layer_classes = {}


def _layers(self):
    """Keras' model.layers (after a fit or build)."""
    import json
    described = json.loads(self._keras_config())["config"]["layers"][1:]  # after the InputLayer
    return [_layer_classes.setdefault(d["class_name"], type(d["class_name"], (Layer,), {}))(
        self, i, d["config"]["name"]) for i, d in enumerate(described)]


def _get_layer(self, name=None, index=None):
    """Keras' get_layer: by name or by index."""
    layers = self.layers
    if index is not None:
        return layers[index]
    for layer in layers:
        if layer.name == name:
            return layer
    raise ConfigError(f"Sequential: get_layer: no layer named {name!r} (the layers: "
                      f"{', '.join(layer.name for layer in layers)})")


def _to_json(self, **kwargs):
    """Keras' to_json: the model as Keras describes it (the config.json of save())."""
    import json
    return json.dumps(json.loads(self._keras_config()), **kwargs)


def _set_trainable(self, value):
    """Keras' model.trainable: True unfreezes every layer; False would leave nothing to train."""
    if not value:
        raise ConfigError("Sequential: trainable = False would freeze every layer, leaving nothing "
                          "to train; freeze layers: model.layers[i].trainable = False")
    for layer in self.layers:
        layer.trainable = True


Sequential.trainable = property(lambda self: True, _set_trainable)
Sequential.layers = property(_layers)
Sequential.get_layer = _get_layer
Sequential.train_on_batch = _train_on_batch
Sequential.test_on_batch = _test_on_batch
Sequential.predict_on_batch = _predict_on_batch
Sequential.__call__ = _call
Sequential.to_json = _to_json
)py",
                 module.attr("__dict__"));
}

}  // namespace ddp::python
