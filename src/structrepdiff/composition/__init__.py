"""p(composition, N): an autoregressive model over (element, count) tokens.

A composition is an integer count vector (V,) over the model's element vocabulary with
1 ≤ Σ counts = N ≤ N_max. `tokens` maps count vectors to token sequences and back, `model`
holds the network with its grammar-constrained sampler, `train` fits it to training counts.
"""

from structrepdiff.composition.model import CompositionModel, CompositionModelConfig
from structrepdiff.composition.tokens import TokenGrammar

__all__ = ["CompositionModel", "CompositionModelConfig", "TokenGrammar"]
