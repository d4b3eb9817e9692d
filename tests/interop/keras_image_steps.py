"""Image models for keras_module.py: Keras' random layers (Note [augmentation layers]) in a
ddp_trainer model and in .keras files both ways; convolutional autoencoders through UpSampling2D
(Note [upsampling]) and Conv2DTranspose (Note [transposed convolution]), sequences through
UpSampling1D and Conv1DTranspose, trained as Keras trains them."""

from keras_text_steps import cross_loaded, trained_alike


def augmentation_layer_checks(ddp, keras, np, rng, check):
    """Keras' Rescaling, RandomFlip, RandomTranslation, RandomRotation, RandomZoom, RandomContrast
    and RandomBrightness before a convnet: ddp.Sequential takes Keras' layer objects; after a fit on each side, each side's .keras
    file loaded by the other has the same layers and predicts the same (the random layers are the
    identity in inference); and the fit augments: from the same weights, the model without them
    trains other weights."""
    x = rng.uniform(0, 255, size=(200, 8, 8, 1)).astype(np.float32)
    labels = (x[:, :4].mean(axis=(1, 2, 3)) > 127).astype(np.int32)
    L = keras.layers
    fill = {"fill_mode": "constant", "fill_value": 0.5}

    def model(augmented):
        randoms = [L.RandomFlip("horizontal"), L.RandomTranslation(0.1, (-0.2, 0.1), **fill),
                   L.RandomRotation(0.05, **fill), L.RandomZoom((-0.1, 0.2), **fill),
                   L.RandomContrast(0.2, value_range=(0, 1)),
                   L.RandomBrightness(0.1, value_range=(0, 1))]
        return keras.Sequential([keras.Input((8, 8, 1)), L.Rescaling(1 / 255)] +
                                (randoms if augmented else []) +
                                [L.Conv2D(4, 3, activation="relu"), L.Flatten(),
                                 L.Dense(2, activation="softmax")])

    theirs = model(True)
    ours = ddp.Sequential(theirs.layers, input_shape=[8, 8, 1])
    plain = ddp.Sequential(model(False).layers, input_shape=[8, 8, 1])
    for m in (ours, plain):
        m.build()
    for k, layer in enumerate(plain.layers):
        layer.set_weights(ours.layers[k + 6 if k else k].get_weights())
    for m in (ours, theirs, plain):
        m.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
        m.fit(x, labels, batch_size=50, epochs=1, verbose=0)
    moved = max(float(np.abs(p - q).max()) for a, b in zip(ours.layers[7:], plain.layers[1:])
                for p, q in zip(a.get_weights(), b.get_weights()))
    predicted, into_keras, into_ours = cross_loaded(ddp, keras, np, ours, theirs, x, "augment")
    classes = [type(layer).__name__ for layer in into_keras.layers]
    translation = into_keras.layers[2].get_config()
    contrast = into_keras.layers[5].get_config()
    check("Keras' random layers: the training images' augmentation, .keras files both ways",
          classes == [type(layer).__name__ for layer in theirs.layers] ==
          [type(layer).__name__ for layer in into_ours.layers] and
          tuple(translation["width_factor"]) == (-0.2, 0.1) and
          translation["fill_value"] == 0.5 and tuple(contrast["factor"]) == (0, 0.2) and
          tuple(contrast["value_range"]) == (0, 1) and predicted < 1e-5 and moved > 1e-3,
          f"Keras' load_model of ours has {classes} (RandomTranslation width_factor "
          f"{translation['width_factor']}, fill_value {translation['fill_value']}; "
          f"RandomContrast factor {contrast['factor']}); each side's "
          f"file loaded by the other predicts within {predicted:.2e}; the fit without them "
          f"trained weights {moved:.2e} away")


def decoders_trained_alike(ddp, keras, np, check, gap, tag, cases):
    """For each (Keras model, x, y, what): our model of its layers trains 30 steps of SGD with
    momentum (MSE) to the same weights as Keras' from the same weights, and each side's .keras
    file loaded by the other predicts the same."""
    for theirs, x, y, what in cases:
        ours = ddp.Sequential(theirs.layers, input_shape=list(x.shape[1:]))
        ours.build()
        trained = trained_alike(keras, ours, theirs, x, y, gap, "mean_squared_error")
        predicted, into_keras, _ = cross_loaded(ddp, keras, np, ours, theirs, x[:20], tag)
        classes = [type(layer).__name__ for layer in into_keras.layers]
        check(f"keras.layers.{what}", trained < 1e-5 and predicted < 1e-5 and
              classes == [type(layer).__name__ for layer in theirs.layers],
              f"30 SGD-momentum steps (MSE) from the same weights: max abs difference of the "
              f"weights {trained:.2e}; .keras files both ways predict within {predicted:.2e} "
              f"({classes})")


def upsampling_checks(ddp, keras, np, rng, check, gap):
    """Keras' UpSampling2D in a convolutional autoencoder (8x8 images through a pooled 4x4 code
    back to 8x8, MSE against the images themselves), bilinear in another (a strided code), and
    UpSampling1D over a Conv1D's steps: from the same weights, 30 steps of SGD with momentum train
    the same weights as Keras' do; each side's .keras file loaded by the other predicts the
    same."""
    L = keras.layers
    images = rng.random((500, 8, 8, 1)).astype(np.float32)
    autoencoder = keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(4, 3, padding="same",
                                                                     activation="relu"),
                                    L.MaxPooling2D(), L.Conv2D(4, 3, padding="same",
                                                               activation="relu"),
                                    L.UpSampling2D((2, 2)), L.Conv2D(1, 3, padding="same",
                                                                     activation="sigmoid")])
    steps = rng.random((500, 6, 3)).astype(np.float32)
    stretched = np.repeat(steps, 3, axis=1)[:, :, :1] * 2 - 0.5  # a target of each output step
    sequence = keras.Sequential([keras.Input((6, 3)), L.Conv1D(5, 2, activation="tanh"),
                                 L.UpSampling1D(3), L.Dense(1)])
    bilinear = keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(4, 3, strides=2,
                                                                  padding="same",
                                                                  activation="relu"),
                                 L.UpSampling2D(2, interpolation="bilinear"),
                                 L.Conv2D(1, 3, padding="same", activation="sigmoid")])
    decoders_trained_alike(ddp, keras, np, check, gap, "upsampling",
                           [(autoencoder, images, images, "UpSampling2D (2, 2)"),
                            (bilinear, images, images, "UpSampling2D bilinear"),
                            (sequence, steps, stretched[:, :15], "UpSampling1D 3")])
    # The module's own ddp.UpSampling2D and ddp.UpSampling1D repeat as np.repeat does.
    small = rng.random((3, 2, 2, 2)).astype(np.float32)
    both = ddp.Sequential([ddp.UpSampling2D((2, 3))], input_shape=[2, 2, 2]).predict(small)
    one = ddp.Sequential([ddp.UpSampling1D(3)], input_shape=[2, 2]).predict(small[:, 0])
    check("ddp.UpSampling2D((2, 3)) and ddp.UpSampling1D(3)",
          np.array_equal(both, small.repeat(2, axis=1).repeat(3, axis=2)) and
          np.array_equal(one, small[:, 0].repeat(3, axis=1)),
          f"outputs {both.shape} and {one.shape}, np.repeat's values")
    try:
        ddp.Sequential([L.UpSampling2D(interpolation="bicubic")], input_shape=[4, 4, 1]).build()
        refused = ""
    except Exception as e:  # noqa: BLE001 (the module's ConfigError)
        refused = str(e)
    check("keras.layers.UpSampling2D(interpolation='bicubic') refused by name",
          "interpolation" in refused, refused)
    # Note [bilinear upsampling]: Keras' resize with half-pixel centres.
    small = rng.random((3, 5, 4, 2)).astype(np.float32)
    smooth = ddp.Sequential([ddp.UpSampling2D((3, 2), interpolation="bilinear")],
                            input_shape=[5, 4, 2]).predict(small)
    expected = np.asarray(L.UpSampling2D((3, 2), interpolation="bilinear")(small))
    check("ddp.UpSampling2D((3, 2), interpolation='bilinear')",
          smooth.shape == expected.shape and float(np.abs(smooth - expected).max()) < 1e-6,
          f"output {smooth.shape}, within {float(np.abs(smooth - expected).max()):.2e} of Keras'")


def transposed_convolution_checks(ddp, keras, np, rng, check, gap):
    """Keras' Conv2DTranspose in a convolutional autoencoder (8x8 images through a strided 4x4
    code, up by a 3x3 transposed convolution of stride 2 with padding "valid" and output_padding 1
    to 10x10, a 2x3 one of stride 1 with "same", a 3x3 convolution back to 8x8) and one of "same"
    padding, stride 2, and
    Conv1DTranspose over a Conv1D's steps: from the same weights, 30 steps of SGD with momentum
    train the same weights as Keras' do; each side's .keras file loaded by the other predicts the
    same; ddp.Conv2DTranspose predicts as Keras' layer with its weights."""
    L = keras.layers
    images = rng.random((500, 8, 8, 1)).astype(np.float32)
    valid = keras.Sequential([keras.Input((8, 8, 1)),
                              L.Conv2D(4, 3, strides=2, padding="same", activation="relu"),
                              L.Conv2DTranspose(3, 3, strides=2, activation="relu",
                                                output_padding=1),
                              L.Conv2DTranspose(2, (2, 3), padding="same", activation="tanh"),
                              L.Conv2D(1, 3, activation="sigmoid")])
    same = keras.Sequential([keras.Input((8, 8, 1)),
                             L.Conv2D(4, 3, strides=2, padding="same", activation="relu"),
                             L.Conv2DTranspose(2, 4, strides=2, padding="same", use_bias=False),
                             L.Conv2D(1, 3, padding="same", activation="sigmoid")])
    steps = rng.random((500, 6, 3)).astype(np.float32)
    target = np.repeat(steps, 2, axis=1)[:, :11, :1] * 2 - 0.5  # 5 steps up to 5 * 2 + 1
    sequence = keras.Sequential([keras.Input((6, 3)), L.Conv1D(5, 2, activation="tanh"),
                                 L.Conv1DTranspose(4, 3, strides=2, activation="tanh"),
                                 L.Dense(1)])
    decoders_trained_alike(ddp, keras, np, check, gap, "transposed",
                           [(valid, images, images, "Conv2DTranspose, valid and same"),
                            (same, images, images, "Conv2DTranspose, stride 2, same"),
                            (sequence, steps, target, "Conv1DTranspose")])
    small = rng.random((4, 3, 2, 2)).astype(np.float32)
    predicts_alike(ddp, np, check, "ddp.Conv2DTranspose(3, (3, 2), strides=(2, 3), "
                   "padding='same', output_padding=(1, 2))",
                   ddp.Conv2DTranspose(3, (3, 2), strides=(2, 3), padding="same",
                                       activation="relu", output_padding=(1, 2)),
                   L.Conv2DTranspose(3, (3, 2), strides=(2, 3), padding="same",
                                     activation="relu", output_padding=(1, 2)),
                   small, (4, 6, 5, 3))
    # The encoder's side: ddp.Conv2D takes Keras' strides and (height, width) kernel sizes too.
    predicts_alike(ddp, np, check, "ddp.Conv2D(4, (3, 2), 'relu', padding='same', "
                   "strides=(2, 3))",
                   ddp.Conv2D(4, (3, 2), "relu", padding="same", strides=(2, 3)),
                   L.Conv2D(4, (3, 2), strides=(2, 3), padding="same", activation="relu"),
                   rng.random((2, 9, 8, 3)).astype(np.float32), (2, 5, 3, 4))


def predicts_alike(ddp, np, check, what, ours, theirs, x, shape):
    """The module's layer `ours` alone, with the weights of Keras' layer `theirs`, predicts on x
    (an output of `shape`) what Keras' layer computes."""
    expected = np.asarray(theirs(x))
    module = ddp.Sequential([ours], input_shape=list(x.shape[1:]))
    module.build()
    module.layers[0].set_weights(theirs.get_weights())
    got = module.predict(x)
    check(what, got.shape == expected.shape == shape and
          float(np.abs(got - expected).max()) < 1e-5,
          f"output {got.shape}, within {float(np.abs(got - expected).max()):.2e} of Keras' layer "
          f"with the same weights")


def dilated_convolution_checks(ddp, keras, np, rng, check, gap):
    """Keras' dilation_rate (Note [dilated convolution]): Conv2D dilated with "same" and "valid"
    padding over images, and Conv1D with padding "causal", dilated 2 and 4, over steps: from the
    same weights, 30 steps of SGD with momentum train the same weights as Keras' do; each side's
    .keras file loaded by the other predicts the same; ddp.Conv1D(..., padding="causal",
    dilation_rate=...) predicts as Keras' layer with its weights; ddp.Residual takes Keras' layer
    objects as it takes the module's own."""
    L = keras.layers
    images = rng.random((500, 9, 9, 2)).astype(np.float32)
    dilated = keras.Sequential([keras.Input((9, 9, 2)),
                                L.Conv2D(4, 3, dilation_rate=2, padding="same",
                                         activation="relu"),
                                L.Conv2D(1, (2, 3), dilation_rate=(2, 1),
                                         activation="sigmoid")])
    steps = rng.random((500, 10, 4)).astype(np.float32)
    causal = keras.Sequential([keras.Input((10, 4)),
                               L.Conv1D(5, 3, padding="causal", dilation_rate=2,
                                        activation="tanh"),
                               L.Conv1D(4, 2, padding="causal", dilation_rate=4,
                                        activation="tanh"),
                               L.Dense(1)])
    decoders_trained_alike(ddp, keras, np, check, gap, "dilated",
                           [(dilated, images, images[:, 1:8, 1:8, :1], "Conv2D, dilated"),
                            (causal, steps, steps[:, :, :1].cumsum(axis=1) / 10,
                             "Conv1D, causal and dilated")])
    # Keras' layer objects inside ddp.Residual: the same block as of the module's own layers.
    x = rng.random((3, 5, 5, 2)).astype(np.float32)
    blocks = [ddp.Sequential([ddp.Residual(layers, shortcut=[shortcut])], input_shape=[5, 5, 2])
              for layers, shortcut in (
                  ([L.Conv2D(4, 3, padding="same", dilation_rate=2, activation="relu"),
                    L.BatchNormalization()], L.Conv2D(4, 1, use_bias=False)),
                  ([ddp.Conv2D(4, 3, "relu", padding="same", dilation_rate=2),
                    ddp.BatchNormalization()], ddp.Conv2D(4, 1, use_bias=False)))]
    for block in blocks:
        block.build()
    blocks[0].set_weights(blocks[1].get_weights())
    same = np.array_equal(blocks[0].predict(x), blocks[1].predict(x))
    check("ddp.Residual of Keras' layer objects", same and
          list(blocks[0].get_weights()) == list(blocks[1].get_weights()),
          f"the same weights' names as of ddp's layers, predictions equal: {same}")
    predicts_alike(ddp, np, check, "ddp.Conv1D(3, 2, padding='causal', dilation_rate=3)",
                   ddp.Conv1D(3, 2, padding="causal", dilation_rate=3),
                   L.Conv1D(3, 2, padding="causal", dilation_rate=3),
                   rng.random((2, 7, 4)).astype(np.float32), (2, 7, 3))
