"""Framework integrations, one small module each:

- ``loupe.integrations.transformers.LoupeCallback``: a Hugging Face
  ``transformers`` ``TrainerCallback`` (``Trainer(..., callbacks=[LoupeCallback()])``).
- ``loupe.integrations.lightning.LoupeLogger``: a PyTorch Lightning ``Logger``
  (``Trainer(logger=LoupeLogger(project=...))``).
- ``loupe.integrations.keras.LoupeKerasCallback``: a Keras ``Callback``
  (``model.fit(..., callbacks=[LoupeKerasCallback()])``).

Each module imports its framework when it is imported itself, never before:
``import loupe`` (and ``import loupe.integrations``) imports none of them.
"""
