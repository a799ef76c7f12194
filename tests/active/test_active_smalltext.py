"""tunelab's VAPAL and BADGE inside small-text's PoolBasedActiveLearner, with both kinds of classifier."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("small_text")

from small_text import PoolBasedActiveLearner  # noqa: E402
from small_text.integrations.transformers import (  # noqa: E402
    TransformerBasedClassificationFactory,
    TransformerModelArguments,
)

from tunelab.active.classifier import ClassifierConfig  # noqa: E402
from tunelab.active.smalltext import (  # noqa: E402
    VAPAL,
    FactorisedBADGE,
    FeatureDataset,
    TunelabClassificationFactory,
    transformers_dataset,
)
from tunelab.active.smalltext.transformer_view import TransformerView  # noqa: E402
from tunelab.active.strategies import Badge, Vapal  # noqa: E402

WORDS = ["ball goal team match", "python function bug compile", "bread soup cheese salt"]
TEXTS = [f"{WORDS[i % 3]} example {i}" for i in range(90)]
GOLD = np.arange(90) % 3
INITIAL = np.arange(12)
ROUNDS, N = 3, 8


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer BERT sequence classifier with MiniLM's tokenizer, saved like a hub model."""
    from transformers import BertConfig, BertForSequenceClassification

    from tunelab.models import load_tokenizer

    folder = tmp_path_factory.mktemp("tiny-bert-cls")
    tokenizer = load_tokenizer("all-minilm-l6-v2")
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=3)
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def transformer_learner(folder: Path, strategy):
    from tunelab.models import load_tokenizer

    dataset = transformers_dataset(TEXTS, GOLD, load_tokenizer(str(folder)), max_length=16,
                                   target_labels=np.arange(3))
    factory = TransformerBasedClassificationFactory(
        TransformerModelArguments(str(folder)), num_classes=3,
        kwargs={"num_epochs": 2, "mini_batch_size": 8, "device": "cpu", "lr": 1e-3})
    learner = PoolBasedActiveLearner(factory, strategy, dataset)
    learner.initialize_data(INITIAL, GOLD[INITIAL])
    return learner, dataset


def check_round(learner, before: np.ndarray, picked: np.ndarray) -> None:
    picked = np.asarray(picked)
    assert len(picked) == N and len(np.unique(picked)) == N
    assert np.isin(picked, np.setdiff1d(np.arange(len(TEXTS)), before)).all()
    learner.update(GOLD[picked])
    assert len(learner.indices_labeled) == len(before) + N


@pytest.mark.parametrize("make", [lambda: VAPAL(seed=0), lambda: VAPAL(selector="alps", seed=0),
                                  lambda: FactorisedBADGE(seed=0)], ids=["vapal", "vapal-alps", "badge"])
def test_three_rounds_with_small_text_transformer(tiny_model_dir, make):
    learner, _ = transformer_learner(tiny_model_dir, make())
    for _ in range(ROUNDS):
        before = learner.indices_labeled.copy()
        check_round(learner, before, learner.query(num_samples=N))
    assert len(np.unique(learner.indices_labeled)) == len(INITIAL) + ROUNDS * N


def test_transformer_view_reads_the_head_input(tiny_model_dir):
    """The view's probabilities are small-text's, and the head maps its embeddings to them."""
    learner, dataset = transformer_learner(tiny_model_dir, VAPAL(seed=0))
    clf = learner.classifier
    view = TransformerView(clf, batch_size=7)  # batches of uneven length, trimmed to their longest text
    idx = np.arange(12, 40)
    probs, emb = view.predict_proba(dataset, idx), view.embed(dataset, idx)
    np.testing.assert_allclose(probs, clf.predict_proba(dataset[idx]), atol=1e-5)
    head = clf.model.classifier
    with torch.no_grad():
        from_head = torch.softmax(head(torch.as_tensor(emb)), -1).numpy()
    np.testing.assert_allclose(from_head, probs, atol=1e-5)
    out = view.vap(dataset, idx, xi=0.1, eps=5.0, power_iterations=1, seed=0)
    assert out["r"].shape == (len(idx), 32) and np.isfinite(out["r"]).all()
    assert (out["smoothness"] >= 0).all() and out["smoothness"].max() > 0
    again = view.vap(dataset, idx, xi=0.1, eps=5.0, power_iterations=1, seed=0)
    np.testing.assert_array_equal(out["r"], again["r"])  # seeded: the same query twice picks the same


@pytest.mark.parametrize("name", ["vapal", "badge"])
def test_tunelab_classifier_loop_selects_what_tunelab_selects(tmp_path, monkeypatch, name):
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path / "cache"))
    config = ClassifierConfig(encoder="tiny-bert", max_length=16)
    dataset = FeatureDataset.from_texts(TEXTS, GOLD, config)
    strategy, ours = (VAPAL(seed=3), Vapal()) if name == "vapal" else (FactorisedBADGE(seed=3), Badge())
    learner = PoolBasedActiveLearner(TunelabClassificationFactory(3, config), strategy, dataset)
    learner.initialize_data(INITIAL, GOLD[INITIAL])
    for _ in range(ROUNDS):
        before = learner.indices_labeled.copy()
        rng = copy.deepcopy(strategy.rng)  # the draws small-text's query is about to make
        expected = ours.query(learner.classifier.model, dataset.pool, before, N, rng)
        picked = learner.query(num_samples=N)
        np.testing.assert_array_equal(picked, expected)
        check_round(learner, before, picked)


def test_unsupported_classifier_and_pool_exhaustion(tmp_path, monkeypatch):
    from small_text.query_strategies.exceptions import PoolExhaustedException

    with pytest.raises(PoolExhaustedException):
        VAPAL().query(object(), None, np.arange(3), np.arange(3, 6), np.zeros(3, dtype=int), n=5)
    with pytest.raises(TypeError, match="not supported"):
        FactorisedBADGE().query(object(), None, np.arange(10), np.arange(10, 12), np.zeros(2, dtype=int), n=2)


def doc_snippets(title: str) -> list[str]:
    """The python blocks of a docs/active.md section."""
    text = (Path(__file__).parents[2] / "docs" / "active.md").read_text()
    section = text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_docs_snippet_runs(tiny_model_dir, monkeypatch):
    import tunelab.models

    monkeypatch.setattr(tunelab.models, "encoder_path", lambda name="": tiny_model_dir)  # MiniLM -> the tiny model
    labels = np.full(len(TEXTS), -1)
    labels[INITIAL] = GOLD[INITIAL]
    namespace = {"texts": TEXTS, "labels": labels, "initial": INITIAL, "ask_a_human": lambda idx: GOLD[idx]}
    exec(compile(doc_snippets("For small-text users")[0], "docs/active.md", "exec"), namespace)
    learner = namespace["learner"]
    assert len(np.unique(learner.indices_labeled)) == len(INITIAL) + 3 * 20


def test_docs_snippet_with_tunelab_classifier_runs(tmp_path, monkeypatch):
    """The second block swaps in tunelab's classifier (on the embedded MiniLM); one round of the loop."""
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path / "cache"))
    labels = np.full(len(TEXTS), -1)
    labels[INITIAL] = GOLD[INITIAL]
    namespace = {"texts": TEXTS, "labels": labels}
    exec(compile(doc_snippets("For small-text users")[1], "docs/active.md", "exec"), namespace)
    learner = PoolBasedActiveLearner(namespace["factory"], VAPAL(seed=0), namespace["dataset"])
    learner.initialize_data(INITIAL, GOLD[INITIAL])
    picked = learner.query(num_samples=20)
    assert len(np.unique(picked)) == 20 and not np.isin(picked, INITIAL).any()
