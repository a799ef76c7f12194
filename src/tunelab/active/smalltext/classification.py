"""tunelab's classifier (`classifier.ActiveClassifier`) as a small-text `Classifier`.

It trains on a `FeatureDataset` (cached encoder states), so each small-text round retrains only
the head (or the top layers), not the encoder. Encode the dataset with the same
`ClassifierConfig` the factory gets.
"""

from __future__ import annotations

import numpy as np
from small_text.classifiers import Classifier
from small_text.classifiers.classification import EmbeddingMixin
from small_text.classifiers.factories import AbstractClassifierFactory

from tunelab.active.classifier import ActiveClassifier, ClassifierConfig


class TunelabClassification(EmbeddingMixin, Classifier):
    """fit / predict / predict_proba / embed on FeatureDatasets; `model` is the fitted ActiveClassifier."""

    def __init__(self, num_classes: int, config: ClassifierConfig | None = None, seed: int = 0):
        self.num_classes = num_classes
        self.config = config or ClassifierConfig()
        self.seed = seed
        self.model: ActiveClassifier | None = None

    def fit(self, train_set, weights=None):
        if weights is not None:
            raise ValueError("TunelabClassification does not support sample weights")
        model = ActiveClassifier.for_encoder(self.config, self.num_classes)
        width = train_set.pool.hidden.shape[-1]
        if width != model.hidden_size:
            raise ValueError(f"the dataset holds {width}-wide states but encoder '{self.config.encoder}' gives "
                             f"{model.hidden_size}: encode it with the classifier's ClassifierConfig")
        self.model = model.fit(train_set.pool, np.arange(len(train_set)), train_set.y, seed=self.seed)
        return self

    def fitted_model(self) -> ActiveClassifier:
        if self.model is None:
            raise ValueError("the classifier is not trained: call fit() first")
        return self.model

    def predict_proba(self, data_set) -> np.ndarray:
        return self.fitted_model().predict_proba(data_set.pool, np.arange(len(data_set)))

    def predict(self, data_set, return_proba: bool = False):
        proba = self.predict_proba(data_set)
        return (proba.argmax(1), proba) if return_proba else proba.argmax(1)

    def embed(self, data_set, return_proba: bool = False, pbar=None):
        """The head's input (what BADGE's gradient embedding and BERT-KM read)."""
        emb = self.fitted_model().embed(data_set.pool, np.arange(len(data_set)))
        return (emb, self.predict_proba(data_set)) if return_proba else emb


class TunelabClassificationFactory(AbstractClassifierFactory):
    def __init__(self, num_classes: int, config: ClassifierConfig | None = None, seed: int = 0):
        self.num_classes, self.config, self.seed = num_classes, config or ClassifierConfig(), seed

    def new(self) -> TunelabClassification:
        return TunelabClassification(self.num_classes, self.config, self.seed)
