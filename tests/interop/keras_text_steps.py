"""Token and sequence models for keras_module.py: Keras' Embedding and above it global and windowed
1D poolings, Conv1D, and two LSTMs, GRUs or SimpleRNNs, one way or both; Keras' Masking under
recurrent layers; Keras' SpatialDropout1D and TimeDistributed(Dense) in .keras files; a tag per
token; against ddp_trainer's."""

import os



def cross_loaded(ddp, keras, np, ours, theirs, x, tag):
    """Each side's .keras file loaded by the other: the largest difference of the loaded models'
    predictions from those of the models that saved them, Keras' model of ours, ours of Keras'."""
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"ddp_{tag}_{os.getpid()}.keras")
    keras_path = path.replace(".keras", "_keras.keras")
    ours.save(path)
    theirs.save(keras_path)
    try:
        into_keras = keras.models.load_model(path)
        into_ours = ddp.load_model(keras_path)
    finally:
        os.remove(path)
        os.remove(keras_path)
    predicted = max(float(np.abs(into_keras.predict(x, verbose=0) - ours.predict(x)).max()),
                    float(np.abs(into_ours.predict(x) - theirs.predict(x, verbose=0)).max()))
    return predicted, into_keras, into_ours


def trained_alike(keras, ours, theirs, x, labels, gap, loss="sparse_categorical_crossentropy"):
    """Keras' model from our model's weights, both trained 3 epochs of SGD with momentum (30
    steps of 50): the largest difference of their weights after."""
    for ours_layer, keras_layer in zip(ours.layers, theirs.layers):
        keras_layer.set_weights(ours_layer.get_weights())
    for m in (ours, theirs):
        m.compile(keras.optimizers.SGD(0.1, momentum=0.9), loss)
        m.fit(x[:500], labels[:500], batch_size=50, epochs=3, shuffle=False, verbose=0)
    return gap(ours, theirs)


def token_model_checks(ddp, keras, np, rng, check, gap):
    """Keras' Embedding and above it GlobalAveragePooling1D, GlobalMaxPooling1D, Conv1D, windowed 1D
    poolings, two LSTMs, GRUs or SimpleRNNs, one way or both (the first returning every step;
    the SimpleRNNs one way tanh, Keras' default, both ways ReLU and GELU; and with mask_zero over
    texts padded with id 0, recurrent layers stacked through Dropout, GlobalAveragePooling1D
    over the real steps of the embedding or of a GRU, and an LSTM above a Dense layer applied at
    each step and a LayerNormalization; a Dense layer at each step of an LSTM's output) on token
    ids: the same training from the same weights, and each side's .keras file loaded by the
    other predicts the same. SGD with momentum: on TensorFlow, Keras' embedding gradients are
    IndexedSlices, through which its Adam updates the moments of the rows a batch holds alone
    (on Keras' torch backend, dense as here)."""
    tokens = rng.integers(0, 50, size=(600, 12))
    token_labels = (tokens < 15).sum(axis=1) % 4
    # Texts of 3 to 12 tokens padded with id 0 at the end, for Embedding(mask_zero=True).
    padded = np.where(np.arange(12) < rng.integers(3, 13, size=(600, 1)),
                      rng.integers(1, 50, size=(600, 12)), 0)
    padded_labels = (np.where(padded > 0, padded, 99) < 15).sum(axis=1) % 4

    def pooled(pooling):
        return [(getattr(ddp, pooling)(), getattr(keras.layers, pooling)())]

    for name, middle in [
            ("GlobalAveragePooling1D", lambda: pooled("GlobalAveragePooling1D")),
            ("GlobalMaxPooling1D", lambda: pooled("GlobalMaxPooling1D")),
            ("Conv1D, GlobalMaxPooling1D",
             lambda: [(ddp.Conv1D(6, 3, strides=2, activation="relu", padding="same"),
                       keras.layers.Conv1D(6, 3, strides=2, activation="relu", padding="same"))] +
             pooled("GlobalMaxPooling1D")),
            ("AveragePooling1D, Conv1D, MaxPooling1D, GlobalAveragePooling1D",
             lambda: [(ddp.AveragePooling1D(3, strides=2, padding="same"),
                       keras.layers.AveragePooling1D(3, strides=2, padding="same")),
                      (ddp.Conv1D(6, 3, activation="relu"),
                       keras.layers.Conv1D(6, 3, activation="relu")),
                      (ddp.MaxPooling1D(2), keras.layers.MaxPooling1D(2))] +
             pooled("GlobalAveragePooling1D")),
            ("LSTM, LSTM",
             lambda: [(ddp.LSTM(6, return_sequences=True),
                       keras.layers.LSTM(6, return_sequences=True)),
                      (ddp.LSTM(5), keras.layers.LSTM(5))]),
            ("Bidirectional(LSTM), Bidirectional(LSTM)",
             lambda: [(ddp.Bidirectional(ddp.LSTM(6, return_sequences=True)),
                       keras.layers.Bidirectional(keras.layers.LSTM(6, return_sequences=True))),
                      (ddp.Bidirectional(ddp.LSTM(5)),
                       keras.layers.Bidirectional(keras.layers.LSTM(5)))]),
            ("GRU, GRU",
             lambda: [(ddp.GRU(6, return_sequences=True),
                       keras.layers.GRU(6, return_sequences=True)),
                      (ddp.GRU(5), keras.layers.GRU(5))]),
            ("Bidirectional(GRU), Bidirectional(GRU)",
             lambda: [(ddp.Bidirectional(ddp.GRU(6, return_sequences=True)),
                       keras.layers.Bidirectional(keras.layers.GRU(6, return_sequences=True))),
                      (ddp.Bidirectional(ddp.GRU(5)),
                       keras.layers.Bidirectional(keras.layers.GRU(5)))]),
            ("SimpleRNN, SimpleRNN",
             lambda: [(ddp.SimpleRNN(6, return_sequences=True),
                       keras.layers.SimpleRNN(6, return_sequences=True)),
                      (ddp.SimpleRNN(5), keras.layers.SimpleRNN(5))]),
            ("Bidirectional(SimpleRNN), Bidirectional(SimpleRNN)",
             lambda: [(ddp.Bidirectional(ddp.SimpleRNN(6, "relu", return_sequences=True)),
                       keras.layers.Bidirectional(
                           keras.layers.SimpleRNN(6, "relu", return_sequences=True))),
                      (ddp.Bidirectional(ddp.SimpleRNN(5, "gelu")),
                       keras.layers.Bidirectional(keras.layers.SimpleRNN(5, "gelu")))]),
            ("mask_zero, LSTM, Dropout, LSTM",
             lambda: [(ddp.LSTM(6, return_sequences=True),
                       keras.layers.LSTM(6, return_sequences=True)),
                      (ddp.Dropout(0.0), keras.layers.Dropout(0.0)),
                      (ddp.LSTM(5), keras.layers.LSTM(5))]),
            ("mask_zero, Bidirectional(GRU), SimpleRNN",
             lambda: [(ddp.Bidirectional(ddp.GRU(6, return_sequences=True)),
                       keras.layers.Bidirectional(keras.layers.GRU(6, return_sequences=True))),
                      (ddp.SimpleRNN(5), keras.layers.SimpleRNN(5))]),
            ("mask_zero, Dropout, GlobalAveragePooling1D",
             lambda: [(ddp.Dropout(0.0), keras.layers.Dropout(0.0))] +
             pooled("GlobalAveragePooling1D")),
            ("mask_zero, GRU, GlobalAveragePooling1D",
             lambda: [(ddp.GRU(6, return_sequences=True),
                       keras.layers.GRU(6, return_sequences=True))] +
             pooled("GlobalAveragePooling1D")),
            ("mask_zero, Dense, LayerNormalization, LSTM",
             lambda: [(ddp.Dense(7, "gelu"), keras.layers.Dense(7, activation="gelu")),
                      (ddp.LayerNormalization(), keras.layers.LayerNormalization()),
                      (ddp.LSTM(5), keras.layers.LSTM(5))]),
            ("LSTM, Dense, GlobalMaxPooling1D",
             lambda: [(ddp.LSTM(6, return_sequences=True),
                       keras.layers.LSTM(6, return_sequences=True)),
                      (ddp.Dense(5, "relu"), keras.layers.Dense(5, activation="relu"))] +
             pooled("GlobalMaxPooling1D"))]:
        layers = middle()
        masked = name.startswith("mask_zero")  # Note [padding masks]
        x, labels = (padded, padded_labels) if masked else (tokens, token_labels)
        ours = ddp.Sequential([ddp.Embedding(50, 8, mask_zero=masked)] + [o for o, _ in layers] +
                              [ddp.Dense(4, "softmax")], input_shape=[12])
        ours.build()
        keras_text = keras.Sequential([keras.Input((12,), dtype="int32"),
                                       keras.layers.Embedding(50, 8, mask_zero=masked)] +
                                      [k for _, k in layers] +
                                      [keras.layers.Dense(4, activation="softmax")])
        trained_gap = trained_alike(keras, ours, keras_text, x, labels, gap)
        predicted, into_keras, into_ours = cross_loaded(ddp, keras, np, ours, keras_text, x, "emb")
        check(f"keras.layers.Embedding, {name}",
              trained_gap < 1e-5 and predicted < 1e-5,
              f"30 SGD momentum steps from the same table: max abs difference of the weights "
              f"{trained_gap:.2e}; each side's .keras file loaded by the other predicts within "
              f"{predicted:.2e}")
        if name.startswith("Bidirectional"):
            # The momentum through the .keras files both ways (a Bidirectional's slots in Keras'
            # order of its two cells' variables, a GRU's gates in Keras' order): each loaded model
            # goes on as the model that saved it, 10 more steps.
            for m in (ours, keras_text, into_ours, into_keras):
                m.fit(tokens[:500], token_labels[:500], batch_size=50, epochs=1, shuffle=False,
                      verbose=0)
            went_on = max(gap(keras_text, into_ours), gap(ours, into_keras))
            check(f"the momentum of keras.layers.Embedding, {name} in .keras files",
                  went_on < 1e-5, f"10 steps after loading, each side's model against the one "
                  f"that saved it: max abs difference of the weights {went_on:.2e}")


def masked_sequence_checks(ddp, keras, np, rng, check, gap):
    """Keras' Masking (Note [padding masks]) over sequences of 3 features, 3 to 12 real steps
    padded with zero steps at the end, a zero step inside some, and a step with one feature zero
    in others (not padding: not all its features are the mask value), under an LSTM returning
    every step and a GRU: the same training from the same weights (SGD with momentum), and each
    side's .keras file loaded by the other predicts the same."""
    steps = 12
    x = rng.normal(size=(600, steps, 3)).astype(np.float32)
    lengths = rng.integers(3, steps + 1, size=(600, 1))
    x = np.where((np.arange(steps) < lengths)[:, :, None], x, 0).astype(np.float32)
    x[::5, 1, :] = 0
    x[1::5, 2, 0] = 0
    labels = ((x[:, :, 0] > 0).sum(axis=1) % 4).astype(np.int32)
    ours = ddp.Sequential([ddp.Masking(0.0), ddp.LSTM(6, return_sequences=True), ddp.GRU(5),
                           ddp.Dense(4, "softmax")], input_shape=[steps, 3])
    ours.build()
    theirs = keras.Sequential([keras.Input((steps, 3)), keras.layers.Masking(0.0),
                               keras.layers.LSTM(6, return_sequences=True),
                               keras.layers.GRU(5), keras.layers.Dense(4, activation="softmax")])
    trained_gap = trained_alike(keras, ours, theirs, x, labels, gap)
    predicted = cross_loaded(ddp, keras, np, ours, theirs, x, "mask")[0]
    check("keras.layers.Masking, LSTM, GRU", trained_gap < 1e-5 and predicted < 1e-5,
          f"30 SGD momentum steps from the same weights: max abs difference of the weights "
          f"{trained_gap:.2e}; each side's .keras file loaded by the other predicts within "
          f"{predicted:.2e}")


def spatial_dropout_checks(ddp, keras, np, rng, check):
    """Keras' SpatialDropout1D (rate 0.25) above an Embedding, in .keras files both ways: after a
    fit on each side, the other side's load_model has the layer at its rate and predicts the same
    (dropout is the identity there)."""
    x = rng.integers(0, 50, size=(200, 12))
    labels = (x < 15).sum(axis=1) % 4
    ours = ddp.Sequential([ddp.Embedding(50, 8), ddp.SpatialDropout1D(0.25),
                           ddp.GlobalAveragePooling1D(), ddp.Dense(4, "softmax")],
                          input_shape=[12])
    theirs = keras.Sequential([keras.Input((12,), dtype="int32"), keras.layers.Embedding(50, 8),
                               keras.layers.SpatialDropout1D(0.25),
                               keras.layers.GlobalAveragePooling1D(),
                               keras.layers.Dense(4, activation="softmax")])
    for m in (ours, theirs):
        m.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
        m.fit(x, labels, batch_size=50, epochs=1, verbose=0)
    predicted, into_keras, _ = cross_loaded(ddp, keras, np, ours, theirs, x, "spatial")
    layer = into_keras.layers[1]
    check("keras.layers.SpatialDropout1D in .keras files",
          type(layer).__name__ == "SpatialDropout1D" and layer.rate == 0.25 and predicted < 1e-5,
          f"Keras' load_model of ours has {type(layer).__name__}({layer.rate}); each side's file "
          f"loaded by the other predicts within {predicted:.2e}")


def time_distributed_checks(ddp, keras, np, rng, check, gap):
    """Keras' TimeDistributed(Dense) over sequences of feature vectors, two of them under a
    GlobalAveragePooling1D: ddp.Sequential takes Keras' layers and their weights, trains what
    Keras trains from them, and each side's .keras file loaded by the other predicts the same."""
    x = rng.normal(size=(500, 5, 3)).astype(np.float32)
    labels = (x[:, :, 0].sum(axis=1) > 0).astype(np.int32)
    L = keras.layers
    theirs = keras.Sequential([keras.Input((5, 3)), L.TimeDistributed(L.Dense(4, activation="relu")),
                               L.TimeDistributed(L.Dense(6)), L.GlobalAveragePooling1D(),
                               L.Dense(2, activation="softmax")])
    ours = ddp.Sequential(theirs.layers, input_shape=[5, 3])
    ours.build()
    trained = trained_alike(keras, ours, theirs, x, labels, gap)
    predicted, into_keras, into_ours = cross_loaded(ddp, keras, np, ours, theirs, x, "timed")
    classes = [type(layer).__name__ for layer in into_keras.layers]
    check("keras.layers.TimeDistributed(Dense)",
          trained < 1e-5 and predicted < 1e-5 and classes[:2] == ["TimeDistributed"] * 2 and
          classes == [type(layer).__name__ for layer in into_ours.layers],
          f"30 SGD-momentum steps from the same weights: max abs difference of the weights "
          f"{trained:.2e}; Keras' load_model of ours has {classes}; each side's file loaded by "
          f"the other predicts within {predicted:.2e}")


def tagging_checks(ddp, keras, np, rng, check, gap):
    """A tag per token (Note [targets per position]): Keras' Embedding, a bidirectional LSTM
    returning every step and a softmax Dense layer at each step, labels (texts, steps): the same
    training from the same weights, and the same loss and accuracy (means over every token) from
    evaluate. Then over texts padded with id 0 under Embedding(mask_zero=True) (Note [masked
    positions]): the loss and accuracy over the real tokens only, padding tagged 0; evaluate over
    one batch of the set, where Keras' is the mean over its real tokens too. Then tags left out by
    ignore_class (Keras' compiled accuracy does not see ignore_class and counts those steps, as
    wrong, where ours leaves them out: only the loss is compared), one-hot tags a step under
    label smoothing, of full and of padded texts, and 0/1 labels a step and label (a sigmoid at
    each step)."""
    tokens = rng.integers(0, 50, size=(600, 12))
    padded = np.where(np.arange(12) < rng.integers(3, 13, size=(600, 1)),
                      rng.integers(1, 50, size=(600, 12)), 0)

    def tagged(x, padding=False):  # each token's tag: the class of the token before it
        tags = x * 4 // 50
        tags[:, 1:] = tags[:, :-1].copy()
        if padding:
            tags[x == 0] = 0
        return tags

    ignored = tagged(tokens)
    ignored[rng.random(ignored.shape) < 0.3] = -100
    L = keras.layers
    softmax_tags = [L.Bidirectional(L.LSTM(6, return_sequences=True)),
                    L.Dense(4, activation="softmax")]
    cases = [  # what, x, y, mask_zero, the layers above the embedding, loss, metric
        ("a tag per token (labels of shape (texts, steps))", tokens, tagged(tokens), False,
         softmax_tags, "sparse_categorical_crossentropy", "accuracy"),
        ("a tag per real token of texts padded with id 0 under mask_zero", padded,
         tagged(padded, True), True, softmax_tags, "sparse_categorical_crossentropy", "accuracy"),
        ("labels left out by SparseCategoricalCrossentropy(ignore_class=-100)", tokens, ignored,
         False, softmax_tags, keras.losses.SparseCategoricalCrossentropy(ignore_class=-100),
         None),
        ("one-hot tags a step, CategoricalCrossentropy(label_smoothing=0.1)", tokens,
         np.eye(4, dtype=np.int32)[tagged(tokens)],  # integers: labels (floats are regression's)
         False, softmax_tags, keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
         "accuracy"),
        ("one-hot tags of padded texts under mask_zero, label_smoothing=0.1", padded,
         np.eye(4, dtype=np.int32)[tagged(padded, True)], True, softmax_tags,
         keras.losses.CategoricalCrossentropy(label_smoothing=0.1), "accuracy"),
        ("0/1 labels a step and label, binary_crossentropy", tokens,
         np.stack([tokens < 15, tokens % 2 == 0, tokens > 40], axis=-1).astype(np.int32), False,
         [L.LSTM(6, return_sequences=True), L.Dense(3, activation="sigmoid")],
         "binary_crossentropy", "binary_accuracy"),
    ]
    for what, x, y, mask_zero, above, loss, metric in cases:
        theirs = keras.Sequential([keras.Input((12,)), L.Embedding(50, 8, mask_zero=mask_zero),
                                   *[type(layer).from_config(layer.get_config())
                                     for layer in above]])
        ours = ddp.Sequential(theirs.layers, input_shape=[12])
        ours.build()
        trained = trained_alike(keras, ours, theirs, x, y, gap, loss)
        for m in (ours, theirs):
            m.compile(keras.optimizers.SGD(0.1), loss, metrics=[metric] if metric else None)
        evaluated = [[float(v) for v in np.atleast_1d(
                         m.evaluate(x[500:], y[500:], batch_size=100, verbose=0))]
                     for m in (ours, theirs)]
        check(what,
              trained < 1e-5 and abs(evaluated[0][0] - evaluated[1][0]) < 1e-5 and
              (not metric or abs(evaluated[0][1] - evaluated[1][1]) < 1e-6),
              f"30 SGD-momentum steps from the same weights: max abs difference of the weights "
              f"{trained:.2e}; evaluate (loss{', ' + metric if metric else ''}): ours "
              f"{evaluated[0]}, Keras' {evaluated[1]}")
