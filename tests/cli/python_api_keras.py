"""The Keras-facing parts of run_python_api_scenario.py's jobs (as python_api_ranks.py): Keras'
weights and model files on every rank, and Keras' arguments on one."""

import json
import tempfile

from python_api_ranks import data


def keras_file(out):
    """Note [Keras weights files] on every rank: a convnet's weights saved as Keras' file and loaded
    into another model of the same layers; the file's groups as rank 0 reads them back; the
    mistakes' errors."""
    import h5py
    import numpy as np
    import ddp_trainer as ddp
    rng = np.random.default_rng(0)
    x = rng.random((64, 6, 6, 3)).astype(np.float32)
    y = (np.arange(64) % 3).astype(np.int32)

    def convnet():
        m = ddp.Sequential([ddp.Conv2D(4, 3, padding="same", use_bias=False),
                            ddp.BatchNormalization(), ddp.MaxPooling2D(), ddp.Flatten(),
                            ddp.Dense(8, "relu"), ddp.Dropout(0.1), ddp.Dense(3, "softmax")],
                           input_shape=[6, 6, 3])
        m.compile(ddp.Adam(0.01), "sparse_categorical_crossentropy")
        return m
    trained, other = convnet(), convnet()
    trained.fit(x, y, epochs=2, verbose=False)
    other.fit(x, y, epochs=1, seed=3, verbose=False)
    path = f"{out}.weights.h5"
    trained.save_weights(path)
    other.load_weights(path)
    result = {"same": all(np.array_equal(a, b) for a, b in zip(
        trained.get_weights().values(), other.get_weights().values()))}
    with h5py.File(path, "r") as f:
        groups = {}
        f.visititems(lambda name, obj: groups.__setitem__(name, list(obj.shape))
                     if isinstance(obj, h5py.Dataset) else None)
        result["groups"] = groups
        kernel = np.asarray(f["layers/dense_1/vars/0"])
        conv = np.asarray(f["layers/conv2d/vars/0"])
        # model.layers: Keras' classes and names, each layer's variables as the file holds them.
        result["layers"] = [[type(layer).__name__, layer.name, layer.count_params()]
                            for layer in trained.layers]
        result["count_params"] = trained.count_params()  # Keras': the statistics too
        result["layer_weights"] = all(
            all(np.array_equal(w, np.asarray(f[f"layers/{layer.name}/vars/{i}"]))
                for i, w in enumerate(layer.get_weights()))
            for layer in trained.layers if layer.get_weights())
    # layer.set_weights: another model of the same layers, layer by layer, predicts the same.
    copy = convnet()
    for source, target in zip(trained.layers, copy.layers):
        target.set_weights(source.get_weights())
    result["layers_copied"] = bool(np.array_equal(copy.predict(x), trained.predict(x)))
    try:
        copy.get_layer("dense").set_weights([np.zeros((3, 3), np.float32), np.zeros(8)])
    except ddp.ConfigError as e:
        result["layer_shape_error"] = str(e)
    # PyTorch's (filters, in, kernel_h, kernel_w) in get_weights(), Keras' (h, w, in, filters).
    result["conv_is_keras"] = bool(np.array_equal(
        conv, trained.get_weights()["layers.0.weight"].transpose(2, 3, 1, 0)))
    # (get_weights() has the first dense layer's inputs in PyTorch's (c, h, w) order.)
    result["kernel_is_transposed"] = bool(np.array_equal(
        kernel.T, trained.get_weights()["layers.3.weight"]))
    def dense_only():  # its one dense layer is Keras' "dense", not the file's
        m = ddp.Sequential([ddp.Dense(3, "softmax")], input_shape=[108])
        m.compile(ddp.SGD(0.1), "sparse_categorical_crossentropy")
        m.load_weights(path)  # read when the fit builds the model
        m.fit(x.reshape(64, -1), y, verbose=False)
    errors = []
    for call in (lambda: trained.save_weights(path, overwrite=False), dense_only,
                 lambda: other.load_weights(out + ".junk.h5"),  # the scenario's, not HDF5
                 lambda: other.load_weights(out + ".complex.h5")):  # a complex bias
        try:
            call()
            errors.append(["none", ""])
        except Exception as e:  # noqa: BLE001 (the class is what is checked)
            errors.append([type(e).__name__, str(e)])
    result["errors"] = errors
    # Note [Keras model files]: the .keras archive; its weights are the Keras weights file's.
    trained.save(out + ".keras")
    import zipfile
    with zipfile.ZipFile(out + ".keras") as archive:
        result["archive"] = archive.namelist()
        config = json.loads(archive.read("config.json"))
        result["classes"] = [layer["class_name"] for layer in config["config"]["layers"]]
        with open(f"{out}.archived.{ddp.rank()}.h5", "wb") as f:
            f.write(archive.read("model.weights.h5"))
    from_archive = convnet()
    from_archive.fit(x, y, epochs=1, seed=3, verbose=False)
    from_archive.load_weights(f"{out}.archived.{ddp.rank()}.h5")
    result["archived_weights"] = all(np.array_equal(a, b) for a, b in zip(
        trained.get_weights().values(), from_archive.get_weights().values()))
    # And back (load_model): the same model, weights and predictions on every rank; a file that is not a model, or a layer ddp-trainer does
    # not have, is refused in one line.
    loaded = ddp.load_model(out + ".keras")
    result["loaded"] = [loaded.built, bool(np.array_equal(loaded.predict(x), trained.predict(x))),
                        all(np.array_equal(a, b) for a, b in zip(
                            trained.get_weights().values(), loaded.get_weights().values()))]
    def altered(name, layer, key, value):  # the file with one layer's setting changed
        changed = json.loads(json.dumps(config))
        changed["config"]["layers"][layer][key] = value
        with zipfile.ZipFile(out + ".keras") as archive, \
                zipfile.ZipFile(f"{out}.{name}.{ddp.rank()}.keras", "w") as made:
            made.writestr("config.json", json.dumps(changed))
            made.writestr("model.weights.h5", archive.read("model.weights.h5"))
        return f"{out}.{name}.{ddp.rank()}.keras"
    unknown = altered("unknown", 4, "class_name", "ConvLSTM2D")
    rate = altered("rate", 6, "config", {"rate": 2.0})
    for call in (lambda: ddp.load_model(unknown), lambda: ddp.load_model(rate),
                 lambda: ddp.load_model(out + ".weights.h5")):
        try:
            call()
        except Exception as e:  # noqa: BLE001 (the class is what is checked)
            result.setdefault("load_errors", []).append([type(e).__name__, str(e)])
    shapeless = ddp.Sequential([ddp.Dense(3)])  # neither fitted nor buildable
    for call in (lambda: trained.save(out + ".keras", overwrite=False),
                 lambda: trained.save(out + ".model"), lambda: shapeless.save(out + ".keras")):
        try:
            call()
        except Exception as e:  # noqa: BLE001 (the class is what is checked)
            result.setdefault("save_errors", []).append([type(e).__name__, str(e)])
    with open(f"{out}.{ddp.rank()}", "w") as f:
        json.dump(result, f)


def keras_arguments():
    """Keras' arguments the module takes (one rank), as JSON: shuffle=False trains the batches in
    the data's order (one epoch of two batches is a fit of the first half, then of the second);
    evaluate's three forms; an optimizer by Keras' name has Keras' defaults; count_params before
    and after a fit; predict takes batch_size and verbose; validation_freq; Keras' loss
    objects."""
    import numpy as np
    import ddp_trainer as ddp
    x, y, _, _ = data()
    x, y = x[:64], y[:64]

    def model(optimizer=None, loss="sparse_categorical_crossentropy"):
        m = ddp.Sequential([ddp.Dense(16, "relu"), ddp.Dense(4, "softmax")], input_shape=[10])
        m.compile(optimizer or ddp.SGD(0.1), loss, ["accuracy"])
        return m

    def weights(m):
        return np.concatenate([v.ravel() for v in m.get_weights().values()])
    in_order, halves, shuffled = model(), model(), model()
    in_order.fit(x, y, batch_size=32, shuffle=False, verbose=0)
    halves.fit(x[:32], y[:32], batch_size=32, shuffle=False, verbose=0)
    halves.fit(x[32:], y[32:], batch_size=32, shuffle=False, verbose=0)
    shuffled.fit(x, y, batch_size=32, verbose=0)
    named, given = model("Adam"), model(ddp.Adam())
    result = {"params_before_fit": named.count_params(),
              "halves": float(np.abs(weights(in_order) - weights(halves)).max()),
              "shuffled": float(np.abs(weights(in_order) - weights(shuffled)).max()),
              "named_optimizer": named.fit(x, y, epochs=2, verbose=0) ==
              given.fit(x, y, epochs=2, verbose=0),
              "params_after_fit": named.count_params(),
              "evaluate": [in_order.evaluate(x, y), in_order.evaluate(x, y, return_dict=True)],
              "predict": bool(np.array_equal(in_order.predict(x, batch_size=7, verbose=0),
                                             in_order.predict(x)))}
    # initial_epoch: epochs 3 and 4 after a fit of 2 are a fit of 4; callbacks see Keras' numbers.
    four, two = model(ddp.Adam(0.01)), model(ddp.Adam(0.01))
    four.fit(x, y, epochs=4, verbose=0)
    two.fit(x, y, epochs=2, verbose=0)

    class Epochs:
        seen = []

        def on_epoch_begin(self, epoch, logs):
            self.seen.append(epoch)
    rest = two.fit(x, y, epochs=4, initial_epoch=2, verbose=0, callbacks=[Epochs()])
    result["initial_epoch"] = [bool(np.array_equal(weights(two), weights(four))),
                               len(rest["loss"]), Epochs.seen]
    # Keras' History: rest.history["loss"] as rest["loss"], rest.epoch, model.history.
    result["history_object"] = [type(rest).__name__, rest.history["loss"] == rest["loss"],
                                rest.epoch, two.history is rest]
    loss_only = ddp.Sequential([ddp.Dense(4, "softmax")], input_shape=[10])
    loss_only.compile("sgd", "sparse_categorical_crossentropy")  # Keras: no metrics
    loss_only.fit(x, y, verbose=0)
    result["loss_only"] = loss_only.evaluate(x, y, verbose=0)
    # validation_freq: every second epoch, or the listed ones (Keras' History lists the val_
    # values of those epochs alone); steps_per_epoch is refused.
    result["validation_freq"] = [
        len(model().fit(x, y, epochs=4, verbose=0, validation_data=(x, y),
                        validation_freq=freq)["val_loss"]) for freq in (1, 2, [1, 2, 3])]
    for wrong in ({"steps_per_epoch": 1}, {"validation_freq": "2"}, {"validation_freq": [1.5]}):
        try:
            model().fit(x, y, verbose=0, validation_data=(x, y), **wrong)
        except ddp.ConfigError as e:
            result.setdefault("refused", []).append(str(e))
    # The one-batch methods: train_on_batch twice trains what a fit of those two batches in order
    # does, and returns each batch's loss and accuracy; the others are evaluate and predict.
    stepped, fitted = model(ddp.Adam(0.01)), model(ddp.Adam(0.01))
    logs = [stepped.train_on_batch(x[:32], y[:32]),
            stepped.train_on_batch(x[32:], y[32:], return_dict=True)]
    history = fitted.fit(x, y, batch_size=32, shuffle=False, verbose=0)
    result["on_batch"] = {
        "weights": bool(np.array_equal(weights(stepped), weights(fitted))),
        "second_batch": sorted(logs[1]) == ["accuracy", "loss"] and all(
            abs(logs[1][k] - (history[k][0] * 2 - logs[0][i])) < 1e-12  # the epoch's mean
            for i, k in enumerate(["loss", "accuracy"])),
        "test": stepped.test_on_batch(x, y) == stepped.evaluate(x, y),
        "predict": bool(np.array_equal(stepped.predict_on_batch(x), stepped.predict(x)) and
                        np.array_equal(stepped(x), stepped.predict(x)))}
    try:
        stepped(x, training=True)
    except ddp.ConfigError as e:
        result["on_batch"]["training"] = str(e)
    # Built as Keras builds a model with an input shape: predict and the weights before a fit,
    # which then trains what a fit alone does.
    early, plain = model(), model()
    before = [early.built, early.input_shape]
    early_predicted = early.predict(x)
    early.fit(x, y, epochs=2, verbose=0)
    plain.fit(x, y, epochs=2, verbose=0)
    result["build"] = before + [early.built, list(early_predicted.shape),
                                bool(np.array_equal(weights(early), weights(plain)))]
    # Keras' compile(loss=...) trains by RMSprop, Keras' default; an optimizer object is read
    # through its get_config(), as Keras' own are.
    by_default = ddp.Sequential([ddp.Dense(16, "relu"), ddp.Dense(4, "softmax")],
                                input_shape=[10])
    by_default.compile(loss="sparse_categorical_crossentropy")
    rmsprop, sgd = model(ddp.RMSprop()), model()
    for m in (by_default, rmsprop, sgd):
        m.fit(x, y, shuffle=False, verbose=0)

    # The module's optimizers take Keras' arguments: ddp.Adam's beta_1 trains what an object
    # whose get_config() says the same does, and not what the default does.
    class Adam:  # as keras.optimizers.Adam(amsgrad=True) describes itself
        def get_config(self):
            return {"learning_rate": 0.01, "amsgrad": True}

    class KerasAdam:
        def get_config(self):
            return {"learning_rate": 0.01, "beta_1": 0.5}
    KerasAdam.__name__ = "Adam"
    argued, described, plain = model(ddp.Adam(0.01, beta_1=0.5)), model(KerasAdam()), \
        model(ddp.Adam(0.01))
    for m in (argued, described, plain):
        m.fit(x, y, shuffle=False, verbose=0)
    result["optimizers"] = [bool(np.array_equal(weights(by_default), weights(rmsprop))),
                            bool(np.array_equal(weights(by_default), weights(sgd))),
                            by_default.optimizer.learning_rate,
                            bool(np.array_equal(weights(argued), weights(described))),
                            bool(np.array_equal(weights(argued), weights(plain)))]
    # Keras' names of the adaptive optimizers are their module objects with Keras' defaults.
    for name, made in (("adagrad", ddp.Adagrad()), ("Adamax", ddp.Adamax()),
                       ("nadam", ddp.Nadam()), ("lion", ddp.Lion())):
        named, objected = model(name), model(made)
        for m in (named, objected):
            m.fit(x, y, shuffle=False, verbose=0)
        result["optimizers"].append(bool(np.array_equal(weights(named), weights(objected))) and
                                    not np.array_equal(weights(named), weights(sgd)))
    class SGD:  # get_config()'s values of the wrong kind, or no settings at all
        def __init__(self, config):
            self.config = config

        def get_config(self):
            return self.config
    for optimizer in ("adafactor", Adam(), SGD({"learning_rate": "fast"}), SGD(None)):
        try:
            model(optimizer)
        except ddp.ConfigError as e:
            result["optimizers"].append(str(e))
    # Keras' loss objects: from_logits for a model ending in logits (the loss applies softmax);
    # one-hot targets under label smoothing train what class indices do.
    def logits(loss):
        m = ddp.Sequential([ddp.Dense(16, "relu"), ddp.Dense(4)], input_shape=[10])
        m.compile(ddp.Adam(0.01), loss)
        return m

    class Sparse:  # as keras.losses.SparseCategoricalCrossentropy(from_logits=True) describes it
        def get_config(self):
            return {"from_logits": True, "reduction": "sum_over_batch_size", "ignore_class": None}
    Sparse.__name__ = "SparseCategoricalCrossentropy"
    named, declared, described = logits("sparse_categorical_crossentropy"), \
        logits(ddp.SparseCategoricalCrossentropy(from_logits=True)), logits(Sparse())
    indices = logits(ddp.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1))
    rows = logits(ddp.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1))
    for m, targets in ((named, y), (declared, y), (described, y), (indices, y),
                       (rows, np.eye(4, dtype=np.int32)[y])):
        m.fit(x, targets, shuffle=False, verbose=0)
    result["losses"] = [bool(np.array_equal(weights(named), weights(declared))),
                        bool(np.array_equal(weights(named), weights(described))),
                        bool(np.array_equal(weights(indices), weights(rows))),
                        bool(np.array_equal(weights(named), weights(indices)))]
    for loss in (ddp.SparseCategoricalCrossentropy(from_logits=True), Sparse()):
        try:
            model(loss=loss).fit(x, y, verbose=0)  # ends in softmax
        except ddp.ConfigError as e:
            result["losses"].append(str(e))

    # Keras' callbacks get the run's shape (set_params) before on_train_begin, and a monitoring
    # one in mode "auto" the direction of its quantity, which Keras reads from its own metric
    # objects; to_json is Keras' description of the model.
    class Monitor:  # as keras.callbacks.ModelCheckpoint(monitor=...) in mode "auto"
        def __init__(self, monitor):
            self.monitor, self.mode, self.params = monitor, "auto", None

        def _set_monitor_op(self):
            pass

        def set_params(self, params):
            self.params = params

        def on_train_begin(self, logs=None):
            self.began_with = dict(self.params)
    watching = [Monitor("val_accuracy"), Monitor("val_loss"), Monitor("val_f1")]
    model().fit(x, y, epochs=3, batch_size=20, verbose=0, validation_data=(x, y),
                callbacks=watching)
    result["callbacks"] = [[m.mode for m in watching], watching[0].began_with,
                           json.loads(model().to_json())["class_name"]]

    # Keras' layer objects and Input, as Keras' own describe themselves: the same model as the
    # module's layers, bit for bit; what it does not have, refused in one line.
    def keras_object(class_name, **config):
        return type(class_name, (), {"get_config": lambda self: config})()
    KerasTensor = type("KerasTensor", (), {"shape": (None, 10)})
    from_keras = ddp.Sequential([KerasTensor(), keras_object("Dense", units=16, activation="relu"),
                                 keras_object("Activation", activation="linear"),
                                 keras_object("Dense", units=4, activation="softmax")])
    own = ddp.Sequential([ddp.Dense(16, "relu"), ddp.Dense(4, "softmax")], input_shape=[10])
    added = ddp.Sequential()  # Keras' add and pop
    for layer in (KerasTensor(), keras_object("Dense", units=16, activation="relu"), ddp.Dense(3)):
        added.add(layer)
    added.pop()
    added.add(ddp.Dense(4, "softmax"))
    for m in (from_keras, own, added):
        m.compile(ddp.Adam(0.01), "sparse_categorical_crossentropy")
        m.fit(x, y, epochs=2, verbose=0)
    result["layers"] = [from_keras.input_shape, bool(np.array_equal(weights(from_keras),
                                                                    weights(own))),
                        bool(np.array_equal(weights(added), weights(own)))]
    # Keras' Activation layer and ddp.Activation of an activation without a fused kernel train
    # what Dense(activation=...) does (Note [fused activations]), bit for bit.
    fused = ddp.Sequential([ddp.Dense(16, "gelu"), ddp.Dense(4, "softmax")], input_shape=[10])
    keras_layer = ddp.Sequential([KerasTensor(), keras_object("Dense", units=16),
                                  keras_object("Activation", activation="gelu"),
                                  keras_object("Dense", units=4, activation="softmax")])
    own_layer = ddp.Sequential([ddp.Dense(16), ddp.Activation("gelu"), ddp.Dense(4, "softmax")],
                               input_shape=[10])
    for m in (fused, keras_layer, own_layer):
        m.compile(ddp.Adam(0.01), "sparse_categorical_crossentropy")
        m.fit(x, y, epochs=2, verbose=0)
    result["activations"] = [bool(np.array_equal(weights(m), weights(fused)))
                             for m in (keras_layer, own_layer)]
    result["activations"].append(bool(np.array_equal(weights(fused), weights(own))))
    # Keras' LeakyReLU object and ddp.LeakyReLU of one slope alike, another slope not; Keras'
    # activation function "leaky_relu" has the slope 0.2, its layer 0.3.
    leaky = [ddp.Sequential([KerasTensor(), keras_object("Dense", units=16),
                             keras_object("LeakyReLU", negative_slope=0.1),
                             keras_object("Dense", units=4, activation="softmax")])]
    leaky += [ddp.Sequential([ddp.Dense(16), layer, ddp.Dense(4, "softmax")], input_shape=[10])
              for layer in (ddp.LeakyReLU(0.1), ddp.LeakyReLU(), ddp.Activation("leaky_relu"),
                            ddp.LeakyReLU(0.2))]
    for m in leaky:
        m.compile(ddp.Adam(0.01), "sparse_categorical_crossentropy")
        m.fit(x, y, epochs=2, verbose=0)
    result["activations"] += [bool(np.array_equal(weights(leaky[0]), weights(m)))
                              for m in leaky[1:3]]
    result["activations"].append(bool(np.array_equal(weights(leaky[3]), weights(leaky[4]))))
    # Keras' LayerNormalization object and ddp.LayerNormalization alike; it adds gamma and beta.
    norms = [ddp.Sequential([KerasTensor(), keras_object("Dense", units=16),
                             keras_object("LayerNormalization", axis=-1, epsilon=0.001),
                             keras_object("Dense", units=4, activation="softmax")]),
             ddp.Sequential([ddp.Dense(16), ddp.LayerNormalization(), ddp.Dense(4, "softmax")],
                            input_shape=[10]),
             ddp.Sequential([ddp.Dense(16), ddp.Dense(4, "softmax")], input_shape=[10])]
    for m in norms:
        m.compile(ddp.Adam(0.01), "sparse_categorical_crossentropy")
        m.fit(x, y, epochs=2, verbose=0)
    result["activations"] += [bool(np.array_equal(weights(norms[0]), weights(norms[1]))),
                              norms[1].count_params() - norms[2].count_params()]
    # Note [frozen layers]: Keras' layer.trainable, for the fit after the next compile(); a Keras
    # layer object made with trainable=False comes frozen, and trains as ddp's frozen layer.
    frozen_before = own.layers[0].get_weights()
    own.layers[0].trainable = False
    result["frozen"] = [own.layers[0].trainable, own.layers[1].trainable]
    try:
        own.fit(x, y, epochs=1, verbose=0)
    except ddp.ConfigError as e:
        result["frozen"].append(str(e))
    own.compile(ddp.Adam(0.01), "sparse_categorical_crossentropy")
    own.fit(x, y, epochs=1, verbose=0)
    result["frozen"].append(all(np.array_equal(a, b) for a, b in
                                zip(frozen_before, own.layers[0].get_weights())))
    frozen = [ddp.Sequential([KerasTensor(), keras_object("Dense", units=16, trainable=False),
                              keras_object("Dense", units=4, activation="softmax")]),
              ddp.Sequential([ddp.Dense(16), ddp.Dense(4, "softmax")], input_shape=[10]),
              ddp.Sequential([ddp.Dense(16, trainable=False), ddp.Dense(4, "softmax")],
                             input_shape=[10])]
    frozen[1].build()
    frozen[1].layers[0].trainable = False
    for m in frozen:
        m.compile(ddp.Adam(0.01), "sparse_categorical_crossentropy")
        m.fit(x, y, epochs=2, verbose=0)
    result["frozen"] += [frozen[0].layers[0].trainable,
                         bool(np.array_equal(weights(frozen[0]), weights(frozen[1]))),
                         bool(np.array_equal(weights(frozen[0]), weights(frozen[2])))]
    own.trainable = True  # Keras' model.trainable: every layer
    result["frozen"].append(own.layers[0].trainable)

    def freeze_all():
        own.trainable = False
    for call in (lambda: ddp.Sequential().pop(), lambda: own.add(ddp.Dense(2)), freeze_all):
        try:
            call()
        except ddp.ConfigError as e:
            result["layers"].append(str(e))
    for layers, shape in (([keras_object("ConvLSTM2D", units=4)], []), ([3], []),
                          ([KerasTensor(), ddp.Dense(4)], [12])):
        try:
            ddp.Sequential(layers, input_shape=shape)
        except ddp.ConfigError as e:
            result["layers"].append(str(e))

    # Keras' metric objects, by the name Keras logs them under.
    class Metric:  # as keras.metrics' objects describe themselves
        def __init__(self, name):
            self.name = name

        def get_config(self):
            return {"name": self.name, "dtype": "float32"}

    def metric(class_name, name):
        made = type(class_name, (Metric,), {})
        return made(name)
    m = ddp.Sequential([ddp.Dense(4, "softmax")], input_shape=[10])
    m.compile("adam", "sparse_categorical_crossentropy",
              [metric("SparseCategoricalAccuracy", "sparse_categorical_accuracy"), "accuracy"])
    history = m.fit(x, y, epochs=2, verbose=0, validation_data=(x, y))
    result["metrics"] = [sorted(history), history["accuracy"] ==
                         history["sparse_categorical_accuracy"]]
    for metrics in ([metric("TopKCategoricalAccuracy", "top_k_categorical_accuracy")],
                    [metric("AUC", "auc")], [metric("SparseCategoricalAccuracy", "acc")],
                    "accuracy", ["accuracy", "accuracy"]):
        try:
            m.compile("adam", "sparse_categorical_crossentropy", metrics)
            m.fit(x, y, verbose=0)
        except ddp.ConfigError as e:
            result["metrics"].append(str(e))

    # An embedding of token ids: its table under get_weights()' name, its .keras file read back
    # predicting the same, and an id outside the table refused naming the sample.
    tokens = np.random.default_rng(2).integers(0, 20, size=(64, 6))
    text = ddp.Sequential([ddp.Embedding(20, 4), ddp.GlobalAveragePooling1D(),
                           ddp.Dense(3, "softmax")], input_shape=[6])
    text.compile(ddp.Adam(0.01), "sparse_categorical_crossentropy")
    text.fit(tokens, (tokens < 7).sum(axis=1) % 3, epochs=2, verbose=0)
    with tempfile.TemporaryDirectory() as tmp:
        text.save(tmp + "/text.keras")
        back = ddp.load_model(tmp + "/text.keras")
    result["embedding"] = [{k: list(v.shape) for k, v in text.get_weights().items()},
                           bool(np.array_equal(back.predict(tokens), text.predict(tokens)))]
    try:
        text.predict(tokens + 1)
    except ddp.DataError as e:
        result["embedding"].append(str(e))
    print(json.dumps(result))


def keras_optimizer_state(out):
    """Note [Keras optimizer state] on every rank: a model saved after two epochs and loaded
    trains its next two as the model that never stopped, bit for bit, by each optimizer's state
    (a fresh optimizer does not); the file's optimizer variables in Keras' order; the mistakes'
    errors."""
    import zipfile
    import h5py
    import numpy as np
    import ddp_trainer as ddp
    rng = np.random.default_rng(1)
    x = rng.random((96, 6, 6, 3)).astype(np.float32)
    y = (np.arange(96) % 3).astype(np.int32)

    def convnet(optimizer):  # a convolution without a bias, batch normalization, two dense
        m = ddp.Sequential([ddp.Conv2D(4, 3, use_bias=False), ddp.BatchNormalization(),
                            ddp.Flatten(), ddp.Dense(5, "relu"), ddp.Dense(3, "softmax")],
                           input_shape=[6, 6, 3])
        m.compile(optimizer, "sparse_categorical_crossentropy")
        return m

    def same(a, b):
        return all(np.array_equal(a[k], b[k]) for k in a)
    result = {}
    for name, make in [("adam", lambda: ddp.AdamW(0.01, weight_decay=0.05)),
                       ("sgd", lambda: ddp.SGD(0.1, momentum=0.9, nesterov=True)),
                       ("rmsprop", lambda: ddp.RMSprop(0.01, momentum=0.5, centered=True))]:
        path = f"{out}.{name}.keras"
        trained = convnet(make())
        trained.fit(x, y, epochs=2, batch_size=32, seed=5, verbose=False)
        trained.save(path)
        loaded = ddp.load_model(path)
        fresh = ddp.load_model(path, compile=False)
        fresh.compile(make(), "sparse_categorical_crossentropy")
        result[name + "_iterations"] = [loaded.optimizer.iterations, fresh.optimizer.iterations]
        for m in (trained, loaded, fresh):
            m.fit(x, y, epochs=4, initial_epoch=2, batch_size=32, seed=5, verbose=False)
        weights = trained.get_weights()
        result[name] = [same(weights, loaded.get_weights()), same(weights, fresh.get_weights())]
        result[name + "_iterations"].append(loaded.optimizer.iterations)
    with zipfile.ZipFile(f"{out}.adam.keras") as archive:
        config = json.loads(archive.read("config.json"))
        h5 = archive.read("model.weights.h5")
    result["compile_config"] = config["compile_config"]
    broken = f"{out}.broken.{ddp.rank()}"
    with open(broken + ".h5", "wb") as f:
        f.write(h5)
    with h5py.File(broken + ".h5", "r") as f:
        group = f["optimizer/vars"]
        result["vars"] = [[list(group[str(i)].shape), str(group[str(i)].dtype)]
                          for i in range(len(group))]

    def altered(what, change):  # the Adam file with its optimizer variables changed
        with open(broken + ".h5", "wb") as f:
            f.write(h5)
        with h5py.File(broken + ".h5", "r+") as f:
            change(f["optimizer/vars"])
        with zipfile.ZipFile(f"{broken}.{what}.keras", "w") as made, \
                open(broken + ".h5", "rb") as weights:
            made.writestr("config.json", json.dumps(config))
            made.writestr("model.weights.h5", weights.read())
        return f"{broken}.{what}.keras"

    def transposed(group):
        kernel = np.asarray(group["8"])
        del group["8"]
        group["8"] = kernel.T

    def fractional(group):
        del group["0"]
        group["0"] = np.float32(2.5)

    def negative_rate(group):
        group["1"][()] = -0.5

    def nan(group):
        velocity = np.asarray(group["3"])
        velocity[0] = np.nan
        group["3"][...] = velocity
    errors = []
    for what, change in [("transposed", transposed), ("fractional", fractional),
                         ("dropped", lambda group: group.__delitem__("13")), ("nan", nan),
                         ("negative_rate", negative_rate)]:
        try:
            ddp.load_model(altered(what, change))
            errors.append(["none", ""])
        except Exception as e:  # noqa: BLE001 (the class is what is checked)
            errors.append([type(e).__name__, str(e)])
    result["errors"] = errors
    with open(f"{out}.{ddp.rank()}", "w") as f:
        json.dump(result, f)


def check_keras_optimizer_state(out, rank, r):
    """keras_optimizer_state's checks of rank `rank`'s results `r`."""
    for name in ("adam", "sgd", "rmsprop"):
        assert r[name] == [True, False], (name, r[name])  # goes on exactly; a fresh one does not
        assert r[name + "_iterations"] == [6, 0, 12], r  # 3 steps an epoch
    optimizer = r["compile_config"]["optimizer"]
    assert optimizer["class_name"] == "AdamW" and optimizer["config"]["weight_decay"] == 0.05 and \
        optimizer["config"]["epsilon"] == 1e-7, optimizer
    assert r["compile_config"]["loss"] == "sparse_categorical_crossentropy", r["compile_config"]
    assert r["compile_config"]["metrics"] == [], r["compile_config"]  # compiled without
    # iterations, the rate, then each trained variable's momentum and velocity, Keras' layouts:
    # the kernel (3, 3, 3, 4), gamma, beta, the dense kernels (in, out) and biases.
    slots = [[3, 3, 3, 4], [4], [4], [64, 5], [5], [5, 3], [3]]
    assert r["vars"] == [[[], "int64"], [[], "float32"]] + [
        [shape, "float32"] for shape in slots for _ in range(2)], r["vars"]
    if rank == 1:  # rank 0 reads; the others learn that it failed
        assert r["errors"] == [["TrainingError", "another rank failed"]] * 5, r["errors"]
        return
    where = f"{out}.broken.0.%s.keras: model.weights.h5"
    assert r["errors"] == [
        ["CheckpointError", (where % "transposed") + ": optimizer/vars/8 (the momentum of "
                            "layers.2.weight): has shape (5, 64), the model's is (64, 5)"],
        ["CheckpointError", (where % "fractional") + ": optimizer/vars/0: the optimizer's "
                            "iterations is one integer, not <HDF5 dataset \"0\": shape (), type "
                            "\"<f4\">"],
        ["CheckpointError", (where % "dropped") + ": optimizer/vars: holds 15 variables, not 16: "
                            "the iterations, the learning rate, and 14 slots of adamw for this "
                            "model"],
        ["CheckpointError", (where % "nan") + ": optimizer/vars/3 (the velocity of "
                            "layers.0.weight): holds a non-finite value (nan)"],
        ["CheckpointError", (where % "negative_rate") + ": optimizer/vars/1: the learning rate is "
                            "-0.500000, not a finite rate > 0"]], r["errors"]
