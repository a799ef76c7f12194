"""Tiny pools and models so the active-learning tests run in seconds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tunelab.active.classifier import ActiveClassifier, ClassifierConfig, encoder_top_layers
from tunelab.active.features import FeaturePool


def tiny_bert_encoder(hidden: int = 8, layers: int = 2, seed: int = 0):
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=50, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=2 * hidden, max_position_embeddings=32, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    return BertModel(config).eval()


def blob_pool(n: int = 90, classes: int = 3, dim: int = 8, tokens: int = 1, seed: int = 0):
    """Gaussian class blobs as hidden states; with tokens > 1 the sequences get random padding."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    centers = rng.normal(size=(classes, dim)) * 2.0
    hidden = centers[labels][:, None, :] + rng.normal(size=(n, tokens, dim))
    mask = np.ones((n, tokens), dtype=bool)
    if tokens > 1:
        lengths = rng.integers(1, tokens + 1, size=n)
        mask = np.arange(tokens)[None, :] < lengths[:, None]
        hidden = hidden * mask[..., None]
    return FeaturePool(torch.tensor(hidden, dtype=torch.float32), torch.tensor(mask)), labels


@pytest.fixture
def make_tiny_bert():
    return tiny_bert_encoder


@pytest.fixture
def make_blob_pool():
    return blob_pool


@pytest.fixture
def pooled_setup():
    pool, labels = blob_pool()
    clf = ActiveClassifier(ClassifierConfig(steps=60), num_labels=3, hidden_size=8)
    labeled = np.arange(12)
    clf.fit(pool, labeled, labels[labeled], seed=0)
    return clf, pool, labels, labeled


@pytest.fixture
def token_setup():
    pool, labels = blob_pool(n=40, tokens=5)
    layers = encoder_top_layers(tiny_bert_encoder(), 1)
    clf = ActiveClassifier(ClassifierConfig(trainable_layers=1, steps=20, layer_lr=1e-3), num_labels=3,
                           hidden_size=8, layers_template=layers)
    labeled = np.arange(9)
    clf.fit(pool, labeled, labels[labeled], seed=0)
    return clf, pool, labels, labeled
