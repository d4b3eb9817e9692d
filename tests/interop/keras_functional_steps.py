"""Keras' functional ResNets for keras_module.py (Note [Keras functional models]): a ResNet built
with Keras' functional API loads into ddp_trainer as residual blocks, and a ddp_trainer model of
residual blocks saves as a functional model Keras loads, the optimizer's state going with the
weights both ways."""

import os


def _layer_weights_equal(np, ours, theirs, in_order=True):
    """Whether the layers of model.layers (after Keras' input) hold the same variables on both
    sides, layer by layer in_order (the weights file named and ordered them alike), or else each
    of Keras' layers those of one of ours (the variables went to the right layers)."""
    def equal(a, b):
        return len(a) == len(b) and all(np.array_equal(p, q) for p, q in zip(a, b))

    mine = [layer.get_weights() for layer in ours.layers]
    keras_layers = [layer.get_weights() for layer in theirs.layers
                    if type(layer).__name__ != "InputLayer"]
    if in_order:
        return len(mine) == len(keras_layers) and all(map(equal, mine, keras_layers))
    for weights in keras_layers:
        match = next((k for k, w in enumerate(mine) if equal(w, weights)), None)
        if match is None:
            return False
        del mine[match]
    return not mine


def _went_on_alike(np, ours, theirs, x, y):
    """Both models trained one more epoch of their compiled optimizer: the largest difference of
    their predictions after."""
    for m in (ours, theirs):
        m.fit(x, y, batch_size=50, epochs=1, shuffle=False, verbose=0)
    return float(np.abs(ours.predict(x) - theirs.predict(x, verbose=0)).max())


def functional_model_checks(ddp, keras, np, rng, check):
    """Keras' ResNet (a strided block whose projection shortcut is called first and comes first
    in Add, an identity block whose Add takes its input first) trained one epoch of Adam and saved:
    ddp.load_model reads it as residual blocks, every layer of model.layers holding Keras' layer's
    variables, predicting as Keras does, and one more epoch goes on from Keras' Adam moments
    (against a fresh Adam's, which trains elsewhere). ddp_trainer's ResNet of ddp.Residual saved
    likewise: Keras loads a functional model of the same layers and variables, predicting and
    training on alike; weights files both ways; a block's layer is frozen with its block alone."""
    L = keras.layers
    keras.utils.set_random_seed(3)
    x = rng.random((200, 8, 8, 3)).astype(np.float32)
    y = (x[:, :4].mean(axis=(1, 2, 3)) > x[:, 4:].mean(axis=(1, 2, 3))).astype(np.int32)
    tmp = os.environ.get("TMPDIR", "/tmp")
    path = os.path.join(tmp, f"ddp_functional_{os.getpid()}")

    inputs = keras.Input((8, 8, 3))
    h = L.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    shortcut = L.BatchNormalization()(L.Conv2D(6, 1, strides=2, use_bias=False)(h))
    t = L.ReLU()(L.BatchNormalization()(L.Conv2D(6, 3, strides=2, padding="same")(h)))
    t = L.BatchNormalization()(L.Conv2D(6, 3, padding="same")(t))
    h = L.Activation("relu")(L.Add()([shortcut, t]))
    h = L.Add()([h, L.Conv2D(6, 3, padding="same", activation="relu")(h)])
    outputs = L.Dense(2, activation="softmax")(L.GlobalAveragePooling2D()(h))
    theirs = keras.Model(inputs, outputs)
    # Adam with a large epsilon: at Keras' 1e-7 the steps of gradients near 0 go by their signs,
    # which float rounding flips (the same steps on both sides ended 1e-4 apart).
    theirs.compile(keras.optimizers.Adam(0.01, epsilon=0.05), "sparse_categorical_crossentropy")
    theirs.fit(x, y, batch_size=50, epochs=1, shuffle=False, verbose=0)
    theirs.save(f"{path}_keras.keras")
    ours = ddp.load_model(f"{path}_keras.keras")
    fresh = ddp.load_model(f"{path}_keras.keras", compile=False)
    fresh.compile(ddp.Adam(0.01, epsilon=0.05), "sparse_categorical_crossentropy")
    os.remove(f"{path}_keras.keras")
    predicted = float(np.abs(ours.predict(x) - theirs.predict(x, verbose=0)).max())
    # Our model.layers follows the order of the functional model ddp-trainer writes.
    variables = _layer_weights_equal(np, ours, theirs, in_order=False)
    blocks = [name for name in ours.get_weights() if name.endswith("shortcut.0.weight")]
    went_on = _went_on_alike(np, ours, theirs, x, y)
    fresh.fit(x, y, batch_size=50, epochs=1, shuffle=False, verbose=0)
    elsewhere = float(np.abs(fresh.predict(x) - theirs.predict(x, verbose=0)).max())
    check("Keras' functional ResNet into ddp.load_model",
          variables and blocks == ["layers.1.shortcut.0.weight"] and predicted < 1e-5 and
          went_on < 1e-5 and elsewhere > 10 * went_on,
          f"blocks {blocks}, each of Keras' layers' variables in one of ours: {variables}; "
          f"predicts within {predicted:.2e}; one more epoch from Keras' Adam moments within "
          f"{went_on:.2e} of Keras' (from a fresh Adam: {elsewhere:.2e})")

    ours = ddp.Sequential([
        ddp.Conv2D(4, 3, "relu", padding="same"),
        ddp.Residual([ddp.Conv2D(6, 3, strides=2, padding="same"), ddp.BatchNormalization(),
                      ddp.Activation("relu"), ddp.Conv2D(6, 3, padding="same"),
                      ddp.BatchNormalization()],
                     shortcut=[ddp.Conv2D(6, 1, strides=2, use_bias=False),
                               ddp.BatchNormalization()]),
        ddp.Activation("relu"),
        ddp.Residual([ddp.Conv2D(6, 3, "relu", padding="same")]),
        ddp.GlobalAveragePooling2D(), ddp.Dense(2, activation="softmax")], input_shape=[8, 8, 3])
    ours.compile(ddp.Adam(0.01, epsilon=0.05), "sparse_categorical_crossentropy")
    ours.fit(x, y, batch_size=50, epochs=1, shuffle=False, verbose=0)
    ours.save(f"{path}.keras")
    ours.save_weights(f"{path}.weights.h5")
    theirs = keras.models.load_model(f"{path}.keras")
    os.remove(f"{path}.keras")
    classes = [type(layer).__name__ for layer in theirs.layers]
    same_classes = classes[1:] == [type(layer).__name__ for layer in ours.layers]
    variables = _layer_weights_equal(np, ours, theirs)
    predicted = float(np.abs(ours.predict(x) - theirs.predict(x, verbose=0)).max())
    # Weights files both ways: Keras' model of our config loads ours, ours loads Keras'.
    twin = keras.models.model_from_json(ours.to_json())
    twin.load_weights(f"{path}.weights.h5")
    from_ours = float(np.abs(twin.predict(x, verbose=0) - ours.predict(x)).max())
    went_on = _went_on_alike(np, ours, theirs, x, y)
    theirs.set_weights([w * 1.1 for w in theirs.get_weights()])  # other weights than ours
    moved = float(np.abs(theirs.predict(x, verbose=0) - ours.predict(x)).max())
    theirs.save_weights(f"{path}.weights.h5")
    ours.load_weights(f"{path}.weights.h5")
    os.remove(f"{path}.weights.h5")
    from_theirs = float(np.abs(theirs.predict(x, verbose=0) - ours.predict(x)).max())
    try:
        ours.layers[2].trainable = False
        refused = "not refused"
    except ddp.ConfigError as e:
        refused = str(e)
    ours.layers[0].trainable = False  # the first convolution, a layer of the model's own
    check("ddp.Residual saved as a functional model Keras loads",
          same_classes and variables and predicted < 1e-5 and from_ours < 1e-5 and
          from_theirs < 1e-5 and moved > 1e-3 and went_on < 1e-5 and
          "a residual block's layer or Add, frozen with the block" in refused and
          not ours.layers[0].trainable,
          f"Keras' model.layers {classes}, each with our layer's variables: {variables}; "
          f"predicts within {predicted:.2e}; .weights.h5 both ways within "
          f"{max(from_ours, from_theirs):.2e}; one more epoch from our Adam moments within "
          f"{went_on:.2e}; layers[2].trainable = False: {refused}")


def applications_checks(ddp, keras, np, rng, check):
    """keras.applications' ResNet50 and ResNet50V2 (ZeroPadding2D, BatchNormalization(axis=3),
    a strided shortcut of MaxPooling2D(1)) and MobileNetV2 (DepthwiseConv2D, ReLU(6)), random
    running statistics and logits out: each loads into ddp_trainer predicting Keras' logits, one
    SGD step has Keras' loss (the training forward), and our .keras file of the trained model
    loads back into Keras predicting ours; ddp.ZeroPadding2D, ZeroPadding1D and DepthwiseConv2D
    predict as Keras' layers."""
    from keras_image_steps import predicts_alike
    x = rng.random((8, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, size=8)
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"ddp_applications_{os.getpid()}")
    for name in ("ResNet50", "ResNet50V2", "MobileNetV2"):
        keras.utils.set_random_seed(1)
        theirs = getattr(keras.applications, name)(weights=None, input_shape=(32, 32, 3),
                                                   classes=10, classifier_activation=None)
        for layer in theirs.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                gamma, beta, mean, var = layer.get_weights()
                layer.set_weights([gamma, beta, rng.normal(0, 0.1, mean.shape).astype(np.float32),
                                   rng.uniform(0.5, 2, var.shape).astype(np.float32)])
        theirs.save(f"{path}.keras")
        ours = ddp.load_model(f"{path}.keras", compile=False)
        logits = theirs.predict(x, verbose=0)
        loaded = float(np.abs(ours.predict(x) - logits).max())
        # One SGD step: its loss is the training forward's (batch statistics). Predictions after it
        # are not compared: at 1x1 pixels the last stage normalizes over 8 values a channel, and
        # TensorFlow's float32 statistics and ours (summed in double) part at ~1e-4, which 50
        # layers in training amplify.
        losses = []
        for m in (ours, theirs):
            m.compile(keras.optimizers.SGD(0.01),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            history = m.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
            losses.append(getattr(history, "history", history)["loss"][0])
        trained = abs(losses[0] - losses[1]) / losses[1]
        ours.save(f"{path}.keras")
        back = keras.models.load_model(f"{path}.keras")
        os.remove(f"{path}.keras")
        predicted = ours.predict(x)  # the trained model's logits, far larger: relative
        returned = float(np.abs(back.predict(x, verbose=0) - predicted).max() /
                         np.abs(predicted).max())
        blocks = sum(1 for k in ours.get_weights() if k.endswith("shortcut.0.weight"))
        check(f"keras.applications.{name} both ways",
              loaded < 1e-4 and trained < 1e-3 and returned < 1e-5 and
              len(back.layers) == len(theirs.layers),
              f"{len(theirs.layers)} layers, {blocks} projection shortcuts; logits (up to "
              f"{float(np.abs(logits).max()):.2f}) within {loaded:.2e}; an SGD step's loss "
              f"{losses[0]:.5f} against Keras' {losses[1]:.5f}; our file of the trained model "
              f"into Keras within {returned:.2e} of its largest logit")
    L = keras.layers
    predicts_alike(ddp, np, check, "ddp.ZeroPadding2D(((1, 2), (0, 3)))",
                   ddp.ZeroPadding2D(((1, 2), (0, 3))), L.ZeroPadding2D(((1, 2), (0, 3))),
                   rng.random((2, 3, 4, 5)).astype(np.float32), (2, 6, 7, 5))
    predicts_alike(ddp, np, check, "ddp.ZeroPadding1D((2, 0))", ddp.ZeroPadding1D((2, 0)),
                   L.ZeroPadding1D((2, 0)), rng.random((2, 6, 3)).astype(np.float32), (2, 8, 3))
    predicts_alike(ddp, np, check, "ddp.DepthwiseConv2D((3, 2), strides=2, padding='same', "
                   "activation='relu6')",
                   ddp.DepthwiseConv2D((3, 2), strides=2, padding="same", activation="relu6"),
                   L.DepthwiseConv2D((3, 2), strides=2, padding="same", activation="relu6"),
                   rng.normal(size=(2, 7, 6, 4)).astype(np.float32), (2, 4, 3, 4))
