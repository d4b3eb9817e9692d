"""Normalization layers for keras_module.py: Keras' RMSNormalization in a ddp_trainer model,
trained as Keras trains it and in .keras files both ways."""

from keras_text_steps import cross_loaded, trained_alike


def rms_normalization_checks(ddp, keras, np, rng, check, gap):
    """Keras' RMSNormalization between two Dense layers, at its default epsilon and at a large one
    (to show), its scale drawn away from ones: from the same weights, 30 SGD-momentum steps train
    the same weights as Keras'; each side's .keras file loaded by the other predicts the same."""
    x = rng.normal(0.5, 1.0, size=(500, 10)).astype(np.float32)
    labels = (x[:, :5].sum(axis=1) > x[:, 5:].sum(axis=1)).astype(np.int32)
    L = keras.layers
    for epsilon in (1e-6, 0.5):
        theirs = keras.Sequential([keras.Input((10,)), L.Dense(16), L.RMSNormalization(
            epsilon=epsilon), L.Activation("tanh"), L.Dense(2, activation="softmax")])
        ours = ddp.Sequential(theirs.layers, input_shape=[10])
        ours.build()
        ours.layers[1].set_weights([rng.uniform(0.5, 1.5, 16).astype(np.float32)])
        trained = trained_alike(keras, ours, theirs, x, labels, gap)
        predicted, into_keras, _ = cross_loaded(ddp, keras, np, ours, theirs, x[:50], "rms")
        kept = into_keras.layers[1].get_config()["epsilon"]
        check(f"keras.layers.RMSNormalization(epsilon={epsilon})",
              trained < 1e-5 and predicted < 1e-5 and abs(kept - epsilon) < 1e-12,
              f"30 SGD-momentum steps from the same weights: max abs difference of the weights "
              f"{trained:.2e}; .keras files both ways predict within {predicted:.2e}, epsilon "
              f"{kept}")
    # The module's own ddp.RMSNormalization: the same model, predicting what it predicts.
    own = ddp.Sequential([ddp.Dense(16), ddp.RMSNormalization(epsilon=0.5), ddp.Activation("tanh"),
                          ddp.Dense(2, "softmax")], input_shape=[10])
    own.build()
    for mine, trained_layer in zip(own.layers, ours.layers):
        mine.set_weights(trained_layer.get_weights())
    diff = float(np.abs(own.predict(x[:50]) - ours.predict(x[:50])).max())
    check("ddp.RMSNormalization(epsilon=0.5)", diff == 0 and len(own.layers[1].get_weights()) == 1,
          f"predicts as the model of Keras' layers, max abs difference {diff:.2e}")
