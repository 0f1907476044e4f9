"""Autoregressive composition model: a GRU over the tokens of `tokens.TokenGrammar`.

p(composition, N) = Π_p p(token_{p+1} | tokens_{≤p}), each factor a softmax over the tokens the
grammar admits next, so every sample is an integer count vector over the vocabulary that sums
to N ≤ N_max, and the likelihood is normalised over exactly those vectors.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from structrepdiff.composition.tokens import BOS, PAD, TokenGrammar

FORMAT, VERSION = "structrepdiff-composition", 1


@dataclass(frozen=True)
class CompositionModelConfig:
    """Network settings; ``atomic_numbers`` is the element vocabulary (periodic-table order)."""

    atomic_numbers: tuple[int, ...]
    n_max: int
    embed: int = 64
    hidden: int = 128
    layers: int = 2
    dropout: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "atomic_numbers", tuple(int(z) for z in self.atomic_numbers))
        if list(self.atomic_numbers) != sorted(set(self.atomic_numbers)) or not self.atomic_numbers:
            raise ValueError("atomic_numbers must be non-empty, unique and ascending")
        if self.n_max < 1:
            raise ValueError("n_max must be at least 1")

    @property
    def grammar(self) -> TokenGrammar:
        return TokenGrammar(len(self.atomic_numbers), self.n_max)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["atomic_numbers"] = list(self.atomic_numbers)
        return d

    def check_matches(self, atomic_numbers, n_max: int, name: str) -> None:
        """Raise ValueError unless this model's vocabulary and N_max are the given ones (a
        structure model's), so that its samples mean the same elements."""
        if tuple(atomic_numbers) != self.atomic_numbers or n_max != self.n_max:
            raise ValueError(
                f"composition model {name} has another element vocabulary or "
                f"N_max ({len(self.atomic_numbers)} elements, N_max {self.n_max})"
                f" than the structure model ({len(atomic_numbers)}, {n_max})"
            )


class CompositionModel(nn.Module):
    """GRU over token + remaining-atom embeddings; logits masked by the grammar."""

    def __init__(self, cfg: CompositionModelConfig):
        super().__init__()
        self.cfg, self.grammar = cfg, cfg.grammar
        self.tok = nn.Embedding(self.grammar.vocab_size, cfg.embed)
        self.rem = nn.Embedding(cfg.n_max + 1, cfg.embed)
        self.rnn = nn.GRU(cfg.embed, cfg.hidden, cfg.layers, batch_first=True,
                          dropout=cfg.dropout if cfg.layers > 1 else 0.0)  # fmt: skip
        self.out = nn.Linear(cfg.hidden, self.grammar.vocab_size)

    def _logits(self, tokens: Tensor, rem: Tensor, h: Tensor | None = None
                ) -> tuple[Tensor, Tensor]:  # fmt: skip
        x = self.tok(tokens) + self.rem(rem.clamp(0, self.cfg.n_max))
        y, h = self.rnn(x, h)
        return self.out(y), h

    def prepare(self, counts: np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
        """(tokens (B, L), remaining atoms (B, L), allowed-next mask (B, L, vocab)) of (B, V)
        counts, trimmed to the longest sequence; compute once, index per batch."""
        tokens = torch.as_tensor(self.grammar.encode(counts))
        length = int((tokens != PAD).sum(1).max())
        tokens = tokens[:, :length]
        rem, last, phase = self.grammar.states(tokens)
        return tokens, rem, self.grammar.allowed(rem, last, phase)

    def log_prob(self, tokens: Tensor, rem: Tensor, ok: Tensor) -> Tensor:
        """(B,) log p of grammatical token sequences, given (tokens, rem, ok) from `prepare`."""
        logits, _ = self._logits(tokens[:, :-1], rem[:, :-1])
        logp = F.log_softmax(logits.masked_fill(~ok[:, :-1], -torch.inf), -1)
        target = tokens[:, 1:]
        lp = logp.gather(-1, target[..., None])[..., 0]
        return torch.where(target == PAD, 0.0, lp).sum(1)

    @torch.no_grad()
    def sample(self, num: int, generator: torch.Generator | None = None,
               temperature: float = 1.0, n_atoms: Tensor | None = None) -> np.ndarray:  # fmt: skip
        """(num, V) int64 counts. ``n_atoms`` (num,) fixes N per sample (p(comp | N))."""
        if temperature <= 0:
            raise ValueError("temperature must be positive")
        g = self.grammar
        tok = torch.full((num,), BOS, dtype=torch.long)
        rem, last, phase = g.advance(tok, *g.start(num))
        seq, h = [tok], None
        for _ in range(g.max_len - 1):
            logits, h = self._logits(tok[:, None], rem[:, None], h)
            ok = g.allowed(rem, last, phase)
            if n_atoms is not None:
                fixed = torch.arange(g.vocab_size) == (g.n_offset + n_atoms - 1)[:, None]
                ok = torch.where((phase == 0)[:, None], ok & fixed, ok)
            p = F.softmax(logits[:, 0].float().masked_fill(~ok, -torch.inf) / temperature, -1)
            tok = torch.multinomial(p, 1, generator=generator)[:, 0]
            seq.append(tok)
            rem, last, phase = g.advance(tok, rem, last, phase)
        return g.decode(torch.stack(seq, 1).numpy())

    def state(self) -> dict[str, Any]:
        """Self-contained dict (loads with ``torch.load(weights_only=True)``)."""
        return {"format": FORMAT, "version": VERSION, "config": self.cfg.to_dict(),
                "weights": self.state_dict()}  # fmt: skip

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> CompositionModel:
        if not isinstance(d, dict) or d.get("format") != FORMAT or d.get("version") != VERSION:
            raise ValueError("not a structrepdiff composition model (format/version mismatch)")
        cfg = d["config"]
        model = cls(
            CompositionModelConfig(**{**cfg, "atomic_numbers": tuple(cfg["atomic_numbers"])})
        )
        model.load_state_dict(d["weights"])
        return model.eval()
