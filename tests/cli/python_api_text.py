"""Token models through the Python module (run_python_api_scenario.py's `transformer_layers` and
`a_class_per_step` cases, under mpiexec -n 2), and residual blocks (`residual_blocks`): ddp.Embedding, ddp.PositionEmbedding and
ddp.TransformerEncoder with KerasHub's arguments fit on token ids, their weights under PyTorch's
names, safetensors both ways, and Keras' files refused naming the layer (a ResNet's go both ways,
as a functional model's); a tag per token (y of shape (texts, steps)). Each rank writes what it saw to OUT.<rank>."""

import json


def transformer(out):
    import numpy as np
    import ddp_trainer as ddp
    rng = np.random.default_rng(3)
    x = rng.integers(1, 30, size=(256, 6))
    x[:, 4:] *= rng.integers(0, 2, size=(256, 2))  # some texts end in padding (id 0)
    y = (x < 10).sum(axis=1) % 3

    def model():
        m = ddp.Sequential([ddp.Embedding(30, 8, mask_zero=True), ddp.PositionEmbedding(),
                            ddp.TransformerEncoder(16, 2, dropout=0.1, activation="gelu",
                                                   normalize_first=True),
                            ddp.GlobalAveragePooling1D(), ddp.Dense(3, activation="softmax")],
                           input_shape=[6])
        m.compile(optimizer=ddp.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
        return m

    fit_and_round_trip(out, model, x, y, 6)


def fit_and_round_trip(out, model, x, y, epochs):
    """Fits model() on (x, y); writes to OUT.<rank> the losses, the weights' shapes by name,
    whether another model of the same layers predicts the same after loading the safetensors
    (and not before), and for Keras' files (.keras, .weights.h5) the message refusing each or
    whether the model it reloads into predicts the same."""
    import numpy as np
    import ddp_trainer as ddp
    trained = model()
    history = trained.fit(x, y, epochs=epochs, batch_size=32, verbose=False)
    weights = trained.get_weights()
    trained.save_weights(f"{out}.safetensors")
    other = model()
    other.fit(x, y, epochs=1, batch_size=32, verbose=False)
    before = other.predict(x)
    other.load_weights(f"{out}.safetensors")
    keras_files = []  # each: the refusal, or whether the file reloaded predicts the same
    for path in (f"{out}.keras", f"{out}.weights.h5"):
        try:
            if path.endswith(".keras"):
                trained.save(path)
                reloaded = ddp.load_model(path)
            else:
                trained.save_weights(path)
                reloaded = model()
                reloaded.build()
                reloaded.load_weights(path)
        except ddp.ConfigError as e:
            keras_files.append(str(e))
            continue
        same = np.array_equal(reloaded.predict(x), trained.predict(x))
        keras_files.append("reloaded, the same predictions" if same else "reloaded, other ones")
    seen = {"loss": history["loss"], "rank": ddp.rank(),
            "shapes": {k: list(v.shape) for k, v in weights.items()},
            "reloaded_same": bool(np.array_equal(other.predict(x), trained.predict(x))),
            "before_differs": bool(not np.array_equal(before, trained.predict(x))),
            "keras_files": keras_files}
    with open(f"{out}.{ddp.rank()}", "w") as f:
        json.dump(seen, f)


def resnet(out):
    """Residual blocks (ddp.Residual), an identity one and a strided one with a projection
    shortcut, on 8x8 images."""
    import numpy as np
    import ddp_trainer as ddp
    rng = np.random.default_rng(5)
    x = rng.random((256, 8, 8, 1), dtype=np.float32)
    y = (x[:, :4].sum(axis=(1, 2, 3)) > x[:, 4:].sum(axis=(1, 2, 3))).astype(np.int64)

    def model():
        m = ddp.Sequential([
            ddp.Conv2D(8, 3, "relu", padding="same"),
            ddp.Residual([ddp.Conv2D(8, 3, padding="same", use_bias=False),
                          ddp.BatchNormalization(), ddp.Activation("relu"),
                          ddp.Conv2D(8, 3, padding="same")]),
            ddp.Activation("relu"),
            ddp.Residual([ddp.Conv2D(16, 3, padding="same", strides=2)],
                         shortcut=[ddp.Conv2D(16, 1, strides=2, use_bias=False)]),
            ddp.GlobalAveragePooling2D(), ddp.Dense(2, activation="softmax")],
            input_shape=[8, 8, 1])
        m.compile(optimizer=ddp.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
        return m

    fit_and_round_trip(out, model, x, y, 6)


def tags(out):
    """A tag per token: y of shape (texts, steps) for a model whose output keeps its steps."""
    import numpy as np
    import ddp_trainer as ddp
    rng = np.random.default_rng(4)
    x = rng.integers(0, 30, size=(256, 6))
    y = x * 3 // 30
    y[:, 1:] = y[:, :-1].copy()  # each token's tag: the class of the token before it
    m = ddp.Sequential([ddp.Embedding(30, 8), ddp.LSTM(12, return_sequences=True),
                        ddp.TransformerEncoder(16, 2, normalize_first=True, causal=True),
                        ddp.Dense(3, activation="softmax")], input_shape=[6])
    m.compile(optimizer=ddp.Adam(0.02), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
    history = m.fit(x, y, epochs=8, batch_size=32, verbose=False)
    p = m.predict(x)
    # Compiled again, as Keras' scripts do before evaluating: the model is built anew for it.
    m.compile(optimizer=ddp.SGD(0.1), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
    loss, accuracy = m.evaluate(x, y)
    seen = {"loss": history["loss"], "shape": list(p.shape), "accuracy": accuracy,
            "by_hand": float((p.argmax(axis=2) == y).mean()),
            "loss_by_hand": float(-np.log(np.take_along_axis(p, y[:, :, None], 2)).mean()),
            "evaluated_loss": loss}
    with open(f"{out}.{ddp.rank()}", "w") as f:
        json.dump(seen, f)
