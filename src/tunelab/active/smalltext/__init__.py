"""tunelab's query strategies for small-text users: VAPAL and factorised BADGE as `QueryStrategy` classes.

    from tunelab.active.smalltext import VAPAL
    learner = PoolBasedActiveLearner(clf_factory, VAPAL(seed=0), dataset)

They work with small-text's `TransformerBasedClassification` on a `TransformersDataset`
(`transformer_view`) and with tunelab's classifier on cached encoder states (`classification`,
`datasets`). The selection itself is tunelab's (`tunelab.active.strategies`), so both libraries
choose the same examples from the same model.
"""

try:
    import small_text  # noqa: F401
except ImportError as err:  # small-text is the optional 'bench' extra
    raise ImportError("tunelab.active.smalltext needs small-text: pip install small-text") from err

from tunelab.active.smalltext.classification import TunelabClassification, TunelabClassificationFactory
from tunelab.active.smalltext.datasets import FeatureDataset, transformers_dataset
from tunelab.active.smalltext.query_strategies import VAPAL, FactorisedBADGE

__all__ = ["VAPAL", "FactorisedBADGE", "FeatureDataset", "TunelabClassification", "TunelabClassificationFactory",
           "transformers_dataset"]
