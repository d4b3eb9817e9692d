#!/usr/bin/env python3
"""Keras 3's own objects with the ddp_trainer module. Callbacks in its fit (Note [Python API],
Note [rate set by a callback]): keras.callbacks.ReduceLROnPlateau and EarlyStopping
(restore_best_weights) train the same bits as ddp.ReduceLROnPlateau and ddp.EarlyStopping with the
same settings, LearningRateScheduler trains each epoch at the rate its schedule gives,
BackupAndRestore continues a fit that died where its last checkpoint left it (Note [run
checkpoints]), and ModelCheckpoint writes a weights file. Keras' RMSprop, Adam, SGD, Adagrad,
Adamax, Nadam and Lion objects in
compile, with Keras' learning-rate schedules and use_ema (Note [weight average]), train what Keras
trains, and .keras files carry their state both ways (Note [Keras optimizer state]). Layers frozen with trainable = False train
what Keras' frozen layers do, and .keras files carry them both ways. Weights files (Note [Keras weights files]): a Keras model of
the same layers (a convnet with batch normalization and a layer without a bias) loads what
ddp-trainer saved, ModelCheckpoint's included, and predicts what ddp-trainer does; ddp-trainer
loads what Keras trained and predicts what Keras does. Keras' functional ResNets load as residual
blocks, and residual blocks save as functional models; keras.applications' ResNet50 and
ResNet50V2 load, train and save back (keras_functional_steps.py). Runs where a Python with Keras 3 is found
and the module is built; ctest registers it only there.
  keras_module.py --module-dir build/python"""

import argparse
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--module-dir", required=True)
    sys.path.insert(0, p.parse_args().module_dir)
    import numpy as np
    import keras
    import ddp_trainer as ddp
    from keras_image_steps import (augmentation_layer_checks, dilated_convolution_checks,
                                   transposed_convolution_checks, upsampling_checks)
    from keras_functional_steps import applications_checks, functional_model_checks
    from keras_norm_steps import rms_normalization_checks
    from keras_text_steps import (masked_sequence_checks, spatial_dropout_checks, tagging_checks,
                                  time_distributed_checks, token_model_checks)

    rng = np.random.default_rng(0)
    w = rng.normal(size=(10, 4))
    x = rng.normal(size=(600, 10)).astype(np.float32)
    y = np.argmax(x @ w + 2 * rng.normal(size=(600, 4)), axis=1).astype(np.int32)

    def fit(callbacks, epochs):
        m = ddp.Sequential([ddp.Dense(16, "relu"), ddp.Dense(4, "softmax")], input_shape=[10])
        m.compile(ddp.Adam(0.05), "sparse_categorical_crossentropy", ["accuracy"])
        h = m.fit(x[:500], y[:500], epochs=epochs, batch_size=50, verbose=False,
                  validation_data=(x[500:], y[500:]), callbacks=callbacks)
        return h, m.get_weights()

    failed = 0

    def check(what, ok, detail):
        nonlocal failed
        print(f"{'ok  ' if ok else 'FAIL'} {what}: {detail}")
        failed += not ok

    def same_weights(a, b):
        return all(np.array_equal(a[k], b[k]) for k in a)

    def same(a, b):  # histories and weights
        return a[0] == b[0] and same_weights(a[1], b[1])

    print("keras", keras.__version__)
    theirs = fit([keras.callbacks.ReduceLROnPlateau("val_loss", 0.5, 1, min_delta=1e-3)], 8)
    ours = fit([ddp.ReduceLROnPlateau("val_loss", 0.5, 1, min_delta=1e-3)], 8)
    rates = theirs[0]["learning_rate"]
    check("keras.callbacks.ReduceLROnPlateau", same(theirs, ours) and rates[-1] < rates[0],
          f"rates {[round(r, 5) for r in rates]}, the same history and weights as "
          f"ddp.ReduceLROnPlateau: {same(theirs, ours)}")
    theirs = fit([keras.callbacks.EarlyStopping("val_loss", patience=1,
                                                restore_best_weights=True)], 30)
    ours = fit([ddp.EarlyStopping("val_loss", patience=1, restore_best_weights=True)], 30)
    epochs = len(theirs[0]["loss"])
    check("keras.callbacks.EarlyStopping", same(theirs, ours) and epochs < 30,
          f"stopped after {epochs} epochs, the same history and restored weights as "
          f"ddp.EarlyStopping: {same(theirs, ours)}")
    schedule = keras.callbacks.LearningRateScheduler(lambda epoch, rate: 0.02 * 0.5 ** epoch)
    rates = fit([schedule], 3)[0]["learning_rate"]
    check("keras.callbacks.LearningRateScheduler",
          np.allclose(rates, [0.02, 0.01, 0.005], rtol=1e-6), f"rates {rates}")

    def twin_mlps(make, loss=lambda: "sparse_categorical_crossentropy", last="softmax",
                  metrics=lambda: None, hidden="relu"):
        """ddp-trainer's MLP and Keras' of the same initial weights, each compiled with make()'s
        optimizer, loss() and metrics()."""
        ours = ddp.Sequential([ddp.Dense(16, hidden), ddp.Dense(4, last)], input_shape=[10])
        ours.build()
        keras_mlp = keras.Sequential([keras.Input((10,)),
                                      keras.layers.Dense(16, activation=hidden),
                                      keras.layers.Dense(4, activation=last)])
        for ours_layer, keras_layer in zip(ours.layers, keras_mlp.layers):
            keras_layer.set_weights(ours_layer.get_weights())
        for m in (ours, keras_mlp):
            m.compile(make(), loss(), metrics=metrics())
        return ours, keras_mlp

    def gap(a, b):  # the largest difference of two models' weights
        return max(float(np.abs(p - q).max()) for la, lb in zip(a.layers, b.layers)
                   for p, q in zip(la.get_weights(), lb.get_weights()))

    # Keras' optimizers given to compile train what they train in Keras, from the same weights:
    # RMSprop by Keras' rule (epsilon under the root, the rate inside the momentum buffer, which
    # a LearningRateScheduler changes each epoch, decoupled weight decay), centered; Adam by
    # Keras' rule (epsilon before the bias correction: large here, to show) under an
    # ExponentialDecay; SGD under a PiecewiseConstantDecay, and by Keras' rule (the rate inside
    # the velocity, decoupled weight decay) with Nesterov momentum under a LearningRateScheduler.
    schedules = keras.optimizers.schedules
    for make, callbacks in [
            (lambda: keras.optimizers.RMSprop(0.01, momentum=0.5, centered=True,
                                              weight_decay=0.01),
             [keras.callbacks.LearningRateScheduler(lambda epoch, rate: 0.01 * 0.5 ** epoch)]),
            (lambda: keras.optimizers.Adam(schedules.ExponentialDecay(0.01, 5, 0.5),
                                           epsilon=0.01), []),
            (lambda: keras.optimizers.SGD(schedules.PiecewiseConstantDecay([8, 16],
                                                                           [0.5, 0.1, 0.02])),
             []),
            (lambda: keras.optimizers.SGD(0.2, momentum=0.9, nesterov=True, weight_decay=0.01),
             [keras.callbacks.LearningRateScheduler(lambda epoch, rate: 0.2 * 0.25 ** epoch)]),
            # Adagrad (epsilon under the root, the sum from 0.1), Adamax (epsilon in the step:
            # large, to show), Nadam (its momentum schedule 0.96^t) and Lion, each by Keras' rule
            # with decoupled weight decay.
            (lambda: keras.optimizers.Adagrad(0.05, epsilon=0.01, weight_decay=0.01), []),
            (lambda: keras.optimizers.Adamax(0.01, epsilon=0.01, weight_decay=0.01), []),
            (lambda: keras.optimizers.Nadam(schedules.ExponentialDecay(0.01, 5, 0.5),
                                            weight_decay=0.01), []),
            (lambda: keras.optimizers.Lion(0.001, weight_decay=0.01), []),
            # Note [weight average]: the moving average of the weights, written into them every 7
            # steps and when fit ends.
            (lambda: keras.optimizers.SGD(0.2, momentum=0.9, use_ema=True, ema_momentum=0.8,
                                          ema_overwrite_frequency=7), [])]:
        ours, keras_mlp = twin_mlps(make)
        for m in (ours, keras_mlp):
            m.fit(x[:500], y[:500], batch_size=50, epochs=3, shuffle=False, verbose=0,
                  callbacks=callbacks)
        diff = gap(ours, keras_mlp)
        optimizer = make()
        schedule = optimizer.get_config()["learning_rate"]
        what = type(optimizer).__name__ + (f" under {schedule['class_name']}"
                                           if isinstance(schedule, dict) else "") + (
                                               " with use_ema" if optimizer.use_ema else "")
        check(f"keras.optimizers.{what}", diff < 1e-5,
              f"30 steps from the same weights: max abs difference of the weights {diff:.2e}")

    # keras.callbacks.SwapEMAWeights: each validation measures the weight average (Note [weight
    # average]), as Keras' swaps it in around its evaluation; without it, the weights. Keras'
    # TensorFlow swap adds and subtracts (a += b, b = a - b, a -= b), which rounds the weights and
    # the average at each validation, so only the first epoch's is bit-for-bit the same model.
    def val_losses(m, callbacks):
        return m.fit(x[:500], y[:500], batch_size=50, epochs=3, shuffle=False, verbose=0,
                     validation_data=(x[500:], y[500:]),
                     callbacks=callbacks).history["val_loss"]

    averaged = lambda: keras.optimizers.SGD(0.2, momentum=0.9, use_ema=True, ema_momentum=0.8)
    ours, keras_mlp = twin_mlps(averaged)
    mine, theirs = (val_losses(m, [keras.callbacks.SwapEMAWeights()]) for m in (ours, keras_mlp))
    plain = val_losses(twin_mlps(averaged)[0], [])
    worst = max(abs(a - b) for a, b in zip(mine, theirs))
    check("keras.callbacks.SwapEMAWeights", abs(mine[0] - theirs[0]) < 1e-6 and worst < 1e-4 and
          min(abs(a - b) for a, b in zip(mine, plain)) > 1e-3,
          f"the first epoch's val_loss of the average within {abs(mine[0] - theirs[0]):.2e} of "
          f"Keras', the three within {worst:.2e} ({mine[0]:.4f}; {plain[0]:.4f} without the "
          "callback)")

    # Keras' activations of these names (GELU's exact form, the default of activation="gelu").
    for hidden in ("gelu", "silu", "elu", "selu", "softplus", "softsign", "leaky_relu", "relu6",
                   "hard_sigmoid", "hard_silu", "mish"):
        ours, keras_mlp = twin_mlps(lambda: keras.optimizers.Adam(0.01), hidden=hidden)
        for m in (ours, keras_mlp):
            m.fit(x[:500], y[:500], batch_size=50, epochs=3, shuffle=False, verbose=0)
        check(f'Dense(activation="{hidden}")', gap(ours, keras_mlp) < 1e-5,
              f"30 Adam steps from the same weights: max abs difference of the weights "
              f"{gap(ours, keras_mlp):.2e}")

    # Keras' LayerNormalization: the same training from the same weights (gamma and beta drawn),
    # and ddp-trainer's .keras file into Keras' load_model.
    ours = ddp.Sequential([ddp.Dense(16), ddp.LayerNormalization(), ddp.Activation("relu"),
                           ddp.Dense(4, "softmax")], input_shape=[10])
    ours.build()
    keras_ln = keras.Sequential([keras.Input((10,)), keras.layers.Dense(16),
                                 keras.layers.LayerNormalization(), keras.layers.Activation("relu"),
                                 keras.layers.Dense(4, activation="softmax")])
    drawn = np.random.default_rng(3)
    ours.layers[1].set_weights([drawn.uniform(0.5, 1.5, 16).astype(np.float32),
                                drawn.uniform(-0.5, 0.5, 16).astype(np.float32)])
    for ours_layer, keras_layer in zip(ours.layers, keras_ln.layers):
        keras_layer.set_weights(ours_layer.get_weights())
    for m in (ours, keras_ln):
        m.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
        m.fit(x[:500], y[:500], batch_size=50, epochs=3, shuffle=False, verbose=0)
    model_path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"ddp_keras_ln_{os.getpid()}.keras")
    ours.save(model_path)
    try:
        rebuilt = keras.models.load_model(model_path)
    finally:
        os.remove(model_path)
    predicted = float(np.abs(rebuilt.predict(x, verbose=0) - ours.predict(x)).max())
    check("keras.layers.LayerNormalization", gap(ours, keras_ln) < 1e-5 and predicted < 1e-5,
          f"30 Adam steps from the same weights: max abs difference of the weights "
          f"{gap(ours, keras_ln):.2e}; Keras' load_model of ddp-trainer's file predicts within "
          f"{predicted:.2e}")

    rms_normalization_checks(ddp, keras, np, rng, check, gap)
    token_model_checks(ddp, keras, np, rng, check, gap)
    masked_sequence_checks(ddp, keras, np, rng, check, gap)
    spatial_dropout_checks(ddp, keras, np, rng, check)
    augmentation_layer_checks(ddp, keras, np, rng, check)
    upsampling_checks(ddp, keras, np, rng, check, gap)
    transposed_convolution_checks(ddp, keras, np, rng, check, gap)
    dilated_convolution_checks(ddp, keras, np, rng, check, gap)
    functional_model_checks(ddp, keras, np, rng, check)
    applications_checks(ddp, keras, np, rng, check)
    time_distributed_checks(ddp, keras, np, rng, check, gap)
    tagging_checks(ddp, keras, np, rng, check, gap)

    # Note [frozen layers]: Keras' layer.trainable = False on a batch normalization (which then
    # normalizes with its moving statistics) and a Dense layer, both above a trained layer, trains
    # what Keras trains (AdamW, whose decay would move a frozen weight); the .keras files carry the
    # frozen layers and the optimizer's slots of the trained ones both ways, and the fits go on
    # alike from them.
    def frozen_twins():
        ours = ddp.Sequential([ddp.Dense(16), ddp.BatchNormalization(), ddp.Activation("relu"),
                               ddp.Dense(16, "relu"), ddp.Dense(4, "softmax")], input_shape=[10])
        ours.build()
        L = keras.layers
        theirs = keras.Sequential([keras.Input((10,)), L.Dense(16), L.BatchNormalization(),
                                   L.Activation("relu"), L.Dense(16, activation="relu"),
                                   L.Dense(4, activation="softmax")])
        drawn = np.random.default_rng(4)
        ours.layers[1].set_weights([drawn.uniform(0.5, 1.5, 16).astype(np.float32),
                                    drawn.uniform(-0.5, 0.5, 16).astype(np.float32),
                                    drawn.uniform(-0.5, 0.5, 16).astype(np.float32),
                                    drawn.uniform(0.5, 2, 16).astype(np.float32)])
        for ours_layer, keras_layer in zip(ours.layers, theirs.layers):
            keras_layer.set_weights(ours_layer.get_weights())
        for m in (ours, theirs):
            m.layers[1].trainable = False
            m.layers[3].trainable = False
            m.compile(keras.optimizers.AdamW(0.01, weight_decay=0.1),
                      "sparse_categorical_crossentropy")
            m.fit(x[:500], y[:500], batch_size=50, epochs=3, shuffle=False, verbose=0)
        return ours, theirs

    ours, keras_frozen = frozen_twins()
    start = ddp.Sequential([ddp.Dense(16), ddp.BatchNormalization(), ddp.Activation("relu"),
                            ddp.Dense(16, "relu"), ddp.Dense(4, "softmax")], input_shape=[10])
    start.build()
    kept = all(np.array_equal(p, q) for p, q in zip(ours.layers[3].get_weights(),
                                                   start.layers[3].get_weights()))
    trained_gap = gap(ours, keras_frozen)
    folder = os.environ.get("TMPDIR", "/tmp")
    ours_path = os.path.join(folder, f"ddp_keras_frozen_{os.getpid()}.keras")
    theirs_path = os.path.join(folder, f"ddp_keras_frozen_{os.getpid()}_keras.keras")
    try:
        ours.save(ours_path)
        keras_frozen.save(theirs_path)
        from_ours = keras.models.load_model(ours_path)
        from_theirs = ddp.load_model(theirs_path)
    finally:
        for path in (ours_path, theirs_path):
            if os.path.exists(path):
                os.remove(path)
    flags = [[layer.trainable for layer in m.layers] for m in (from_ours, from_theirs)]
    for m in (from_ours, from_theirs):
        m.fit(x[:500], y[:500], batch_size=50, epochs=1, shuffle=False, verbose=0)
    went_on = gap(from_ours, from_theirs)
    check("trainable = False (Dense, BatchNormalization)",
          trained_gap < 1e-5 and kept and went_on < 1e-5 and
          flags == [[True, False, True, False, True]] * 2,
          f"30 AdamW steps from the same weights: max abs difference of the weights "
          f"{trained_gap:.2e}, the frozen Dense as it was: {kept}; each other's .keras files "
          f"loaded (trainable {flags[0]}, {flags[1]}) and fitted 10 steps more: {went_on:.2e}")

    # Keras' loss objects: from_logits for a model ending in logits, and one-hot targets smoothed;
    # the .keras file hands Keras the same loss object back.
    losses = keras.losses
    one_hot = np.eye(4, dtype=np.int32)[y]
    for loss, targets in [
            (lambda: losses.SparseCategoricalCrossentropy(from_logits=True), y),
            (lambda: losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
             one_hot)]:
        ours, keras_mlp = twin_mlps(lambda: keras.optimizers.Adam(0.01), loss, "linear")
        for m in (ours, keras_mlp):
            m.fit(x[:500], targets[:500], batch_size=50, epochs=3, shuffle=False, verbose=0)
        model_path = os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                  f"ddp_keras_loss_{os.getpid()}.keras")
        ours.save(model_path)
        try:
            rebuilt = keras.models.load_model(model_path).loss.get_config()
        finally:
            os.remove(model_path)
        given = loss().get_config()
        check(f"keras.losses.{type(loss()).__name__}(from_logits=True)",
              gap(ours, keras_mlp) < 1e-5 and all(rebuilt[k] == given[k] for k in given),
              f"30 steps from the same weights: max abs difference of the weights "
              f"{gap(ours, keras_mlp):.2e}; Keras' load_model of ddp-trainer's file: {rebuilt}")

    # Keras' layer objects in ddp_trainer.Sequential: the model of the module's own layers.
    L = keras.layers
    from_keras = ddp.Sequential([keras.Input((10,)), L.Dense(16, activation="relu"),
                                 L.Dense(4), L.Softmax()])
    flattened = ddp.Sequential([L.Flatten(input_shape=(2, 5)), L.Dense(16, activation="relu"),
                                L.Dense(4, activation="softmax")])
    reshaped = ddp.Sequential()
    for layer in (L.Reshape((2, 5), input_shape=(10,)), L.Flatten(),
                  L.Dense(16, activation="relu"), L.Dense(4, activation="softmax")):
        reshaped.add(layer)
    own = ddp.Sequential([ddp.Dense(16, "relu"), ddp.Dense(4, "softmax")], input_shape=[10])
    rescaled = ddp.Sequential([keras.Input((10,)), L.Rescaling(0.5),
                               L.Dense(16, activation="relu"), L.Dense(4, activation="softmax")])
    for m, features in ((from_keras, x), (flattened, x.reshape(-1, 2, 5)), (reshaped, x),
                        (rescaled, 2 * x), (own, x)):
        m.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
        m.fit(features[:500], y[:500], epochs=2, verbose=0)
    check("keras.layers in ddp_trainer.Sequential",
          same_weights(from_keras.get_weights(), own.get_weights()) and
          same_weights(flattened.get_weights(), own.get_weights()) and
          same_weights(reshaped.get_weights(), own.get_weights()) and
          same_weights(rescaled.get_weights(), own.get_weights()),
          "keras.Input + Dense + Softmax, Flatten(input_shape) + Dense, add(Reshape, Flatten, "
          "Dense), and Rescaling(0.5) of twice the samples train what the module's layers do, "
          "bit for bit")

    # Keras' metric objects: the same history, under Keras' keys.
    ours, keras_mlp = twin_mlps(
        lambda: keras.optimizers.Adam(0.01), metrics=lambda: [
            keras.metrics.SparseCategoricalAccuracy(), "accuracy"])
    logs = [m.fit(x[:500], y[:500], batch_size=50, epochs=3, shuffle=False, verbose=0,
                  validation_data=(x[500:], y[500:])).history for m in (ours, keras_mlp)]
    keys = sorted(k for k in logs[1])
    check("keras.metrics.SparseCategoricalAccuracy", all(
        np.allclose(logs[0][k], logs[1][k], rtol=1e-5, atol=1e-6) for k in keys),
          f"history keys {keys}, ddp-trainer's the same within 1e-5: "
          f"{ {k: [round(v, 4) for v in logs[0][k]] for k in keys if 'accuracy' in k} }")

    # Note [AUC]: keras.metrics.AUC() in compile keeps Keras' history of a multi-label model, and
    # its last val_auc is Keras' AUC of ddp-trainer's predictions.
    labels = (x @ rng.normal(size=(10, 4)) + rng.normal(size=(600, 4)) > 0).astype(np.int32)
    ours, keras_mlp = twin_mlps(lambda: keras.optimizers.Adam(0.01), lambda: "binary_crossentropy",
                                "sigmoid", lambda: [keras.metrics.AUC(name="auc")])
    logs = [m.fit(x[:500], labels[:500], batch_size=50, epochs=3, shuffle=False, verbose=0,
                  validation_data=(x[500:], labels[500:])).history for m in (ours, keras_mlp)]
    keras_auc = keras.metrics.AUC()
    keras_auc.update_state(labels[500:], ours.predict(x[500:]))
    aucs = {k: [round(v, 5) for v in logs[0][k]] for k in ("auc", "val_auc")}
    check("keras.metrics.AUC", set(logs[1]) <= set(logs[0]) and all(
        np.allclose(logs[0][k], logs[1][k], atol=2e-4) for k in ("auc", "val_auc")) and
          abs(logs[0]["val_auc"][-1] - float(keras_auc.result())) < 1e-6,
          f"history {aucs}, Keras' within 2e-4; the last val_auc "
          f"{logs[0]['val_auc'][-1]:.7f}, Keras' AUC of ddp-trainer's predictions "
          f"{float(keras_auc.result()):.7f}")

    # Keras' ModelCheckpoint keeps the best epoch's whole model by a metric's direction, which it
    # reads from Keras' metric objects in a Keras model ("auto"); Keras loads it compiled.
    best_path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"ddp_keras_best_{os.getpid()}.keras")
    try:
        checkpoint = keras.callbacks.ModelCheckpoint(best_path, monitor="val_accuracy",
                                                     save_best_only=True)
        history = fit([checkpoint], 4)[0]
        best = keras.models.load_model(best_path)
        check("keras.callbacks.ModelCheckpoint(save_best_only=True)",
              checkpoint.best == max(history["val_accuracy"]) and
              int(best.optimizer.iterations) % 10 == 0 < int(best.optimizer.iterations),
              f"best val_accuracy {checkpoint.best} of {history['val_accuracy']}, saved after "
              f"{int(best.optimizer.iterations)} steps")
    finally:
        if os.path.exists(best_path):
            os.remove(best_path)

    # Note [Keras optimizer state]: a .keras file carries the optimizer's moments and step count
    # both ways; the model goes on from them as the model that never stopped (a fresh optimizer
    # does not): Keras' file into ddp_trainer.load_model, and ddp-trainer's into Keras'.
    state_path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"ddp_keras_state_{os.getpid()}")
    try:
        for make in [lambda: keras.optimizers.Adam(schedules.ExponentialDecay(0.01, 5, 0.5)),
                     lambda: keras.optimizers.AdamW(0.01, weight_decay=0.05),
                     lambda: keras.optimizers.SGD(0.2, momentum=0.9, nesterov=True),
                     lambda: keras.optimizers.RMSprop(0.01, momentum=0.5, centered=True),
                     lambda: keras.optimizers.Adagrad(0.05),
                     lambda: keras.optimizers.Adamax(0.01),
                     lambda: keras.optimizers.Nadam(0.01),
                     lambda: keras.optimizers.Lion(0.001),
                     lambda: keras.optimizers.Adam(0.01, use_ema=True, ema_momentum=0.9)]:
            ours, keras_mlp = twin_mlps(make)
            for m in (ours, keras_mlp):
                m.fit(x[:500], y[:500], batch_size=50, epochs=2, shuffle=False, verbose=0)
            keras_mlp.save(state_path + ".keras")
            ours.save(state_path + ".ours.keras")
            loaded = ddp.load_model(state_path + ".keras")
            fresh = ddp.load_model(state_path + ".keras", compile=False)
            fresh.compile(make(), "sparse_categorical_crossentropy")
            keras_loaded = keras.models.load_model(state_path + ".ours.keras")
            for m in (keras_mlp, loaded, fresh, ours, keras_loaded):
                m.fit(x[:500], y[:500], batch_size=50, epochs=2, shuffle=False, verbose=0)
            into_ours, into_keras = gap(keras_mlp, loaded), gap(ours, keras_loaded)
            name = type(make()).__name__ + (" with use_ema" if make().use_ema else "")
            check(f"the optimizer's state of keras.optimizers.{name} in .keras files", into_ours < 1e-5 and into_keras < 1e-5 < gap(keras_mlp, fresh) and
                  int(keras_loaded.optimizer.iterations) == 40,
                  f"20 steps after 20: Keras' file into ddp_trainer {into_ours:.2e} from Keras' "
                  f"weights, ddp-trainer's into Keras {into_keras:.2e} from ddp-trainer's, a "
                  f"fresh optimizer {gap(keras_mlp, fresh):.2e}")
    finally:
        for p in (state_path + ".keras", state_path + ".ours.keras"):
            if os.path.exists(p):
                os.remove(p)

    # keras.callbacks.BackupAndRestore works through the trainer's checkpoints.
    backup_dir = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"ddp_keras_backup_{os.getpid()}")

    class Dies(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                raise RuntimeError("died")
    try:
        fit([keras.callbacks.BackupAndRestore(backup_dir), Dies()], 5)
    except RuntimeError:
        pass
    resumed = fit([keras.callbacks.BackupAndRestore(backup_dir)], 5)
    whole = fit([], 5)
    check("keras.callbacks.BackupAndRestore",
          resumed[0]["loss"] == whole[0]["loss"][2:] and same_weights(resumed[1], whole[1])
          and not os.path.exists(backup_dir),
          f"a fit that died in its third epoch went on from the second's checkpoint: "
          f"{len(resumed[0]['loss'])} epochs, the uninterrupted weights bit for bit")

    images = rng.random((128, 8, 8, 3)).astype(np.float32)
    classes = (images[:, :4].mean(axis=(1, 2, 3)) > images[:, 4:].mean(axis=(1, 2, 3))).astype(
        np.int32)

    def ours():
        m = ddp.Sequential([ddp.Conv2D(6, 3, padding="same", use_bias=False),
                            ddp.BatchNormalization(), ddp.MaxPooling2D(), ddp.Conv2D(8, 3, "relu"),
                            ddp.Flatten(), ddp.Dropout(0.2), ddp.Dense(16, "relu"),
                            ddp.Dense(2, "softmax")], input_shape=[8, 8, 3])
        m.compile(ddp.Adam(0.01), "sparse_categorical_crossentropy")
        return m

    def theirs():
        L = keras.layers
        m = keras.Sequential([keras.Input((8, 8, 3)), L.Conv2D(6, 3, padding="same",
                                                                use_bias=False),
                              L.BatchNormalization(), L.MaxPooling2D(), L.Conv2D(8, 3,
                                                                                 activation="relu"),
                              L.Flatten(), L.Dropout(0.2), L.Dense(16, activation="relu"),
                              L.Dense(2, activation="softmax")])
        m.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
        return m

    folder = os.environ.get("TMPDIR", "/tmp")
    path = os.path.join(folder, f"ddp_keras_module_{os.getpid()}.weights.h5")
    model_path = os.path.join(folder, f"ddp_keras_module_{os.getpid()}.keras")
    try:
        trained = ours()
        trained.fit(images, classes, epochs=3, verbose=False,
                    callbacks=[keras.callbacks.ModelCheckpoint(path, save_weights_only=True)])
        keras_model = theirs()
        keras_model.load_weights(path)  # ModelCheckpoint's file of the last epoch
        diff = float(np.abs(trained.predict(images) - keras_model.predict(images, verbose=0)).max())
        check("ModelCheckpoint's file into keras.Sequential", diff < 1e-5,
              f"max abs difference of the predictions {diff:.2e}")
        keras_model.fit(images, classes, epochs=2, verbose=0)
        keras_model.save_weights(path)
        loaded = ours()
        loaded.fit(images, classes, verbose=False)  # builds the model; its weights are replaced
        loaded.load_weights(path)
        diff = float(np.abs(loaded.predict(images) - keras_model.predict(images, verbose=0)).max())
        check("keras.Model.save_weights into ddp_trainer", diff < 1e-5,
              f"max abs difference of the predictions {diff:.2e}")
        # Note [Keras model files]: Keras rebuilds the trained model from its .keras file alone.
        trained.save(model_path)
        rebuilt = keras.models.load_model(model_path)
        diff = float(np.abs(trained.predict(images) - rebuilt.predict(images, verbose=0)).max())
        classes_seen = [type(layer).__name__ for layer in rebuilt.layers]
        same_layers = [[layer.name, [w.shape for w in layer.get_weights()]]
                       for layer in trained.layers] == [
            [layer.name, [w.shape for w in layer.get_weights()]] for layer in rebuilt.layers] and all(
            np.array_equal(a, b) for ours_layer, keras_layer in zip(trained.layers, rebuilt.layers)
            for a, b in zip(ours_layer.get_weights(), keras_layer.get_weights()))
        check("save('model.keras') into keras.models.load_model",
              diff < 1e-5 and same_layers and
              classes_seen == [type(layer).__name__ for layer in theirs().layers] ==
              [type(layer).__name__ for layer in trained.layers],
              f"{classes_seen}, the same model.layers (names, weights): {same_layers}, max abs "
              f"difference of the predictions {diff:.2e}")
        # And Keras' own file into ddp-trainer: the model, its weights, its optimizer (Keras'
        # Adam epsilon included), loss and metrics.
        keras_model = theirs()
        keras_model.compile(keras.optimizers.Adam(0.003), "sparse_categorical_crossentropy",
                            metrics=["accuracy"])
        keras_model.fit(images, classes, epochs=1, verbose=0)
        keras_model.save(model_path)
        loaded = ddp.load_model(model_path)
        diff = float(np.abs(loaded.predict(images) -
                            keras_model.predict(images, verbose=0)).max())
        ours_eval = loaded.evaluate(images, classes)
        theirs_eval = keras_model.evaluate(images, classes, verbose=0)
        check("keras.Model.save('model.keras') into ddp_trainer.load_model",
              diff < 1e-5 and abs(ours_eval[0] - theirs_eval[0]) < 1e-5 and
              ours_eval[1] == theirs_eval[1] and
              abs(loaded.optimizer.learning_rate - 0.003) < 1e-9,
              f"max abs difference of the predictions {diff:.2e}, evaluate {ours_eval} against "
              f"Keras' {theirs_eval}")
    finally:
        for p in (path, model_path):
            if os.path.exists(p):
                os.remove(p)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
