"""Pool-based active learning for text classification: VAPAL and the baseline query strategies.

- `vap`: batched virtual adversarial perturbations of hidden states (padding-aware).
- `badge`: BADGE gradient embeddings with factorised distances (memory O(n*(C+d))).
- `clustering`: k-means nearest-to-centroid, k-means++ seeding, greedy k-center.
- `strategies`: one `query(model, pool, labeled_idx, n, rng)` interface for every strategy.
- `features` / `classifier`: cached encoder states and the classifier on top of them.
- `loop`: rounds of labelling, resumable; `metrics`: learning curves and AULC.
- `labelling` / `query`: the human loop (`tunelab active query`): choose rows, read their labels back.
- `smalltext`: VAPAL and factorised BADGE as small-text `QueryStrategy` classes.
"""
