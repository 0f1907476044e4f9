"""Token sequences for compositions: [BOS, N, E_a, C_a, E_b, C_b, ..., EOS].

N is the atom count, E_k an element of the vocabulary (strictly increasing index, i.e.
periodic-table order) and C_k its count. The grammar (`TokenGrammar.allowed`) admits exactly
the integer count vectors summing to N ≤ N_max: an element may take 1..remaining atoms, the last
vocabulary element only all of them, and EOS comes exactly when no atom remains.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

PAD, BOS, EOS = 0, 1, 2


@dataclass(frozen=True)
class TokenGrammar:
    """Token ids: PAD 0, BOS 1, EOS 2, N tokens, element tokens, count tokens."""

    n_elements: int
    n_max: int

    @property
    def n_offset(self) -> int:  # token of N = 1
        return 3

    @property
    def element_offset(self) -> int:
        return 3 + self.n_max

    @property
    def count_offset(self) -> int:  # token of count = 1
        return 3 + self.n_max + self.n_elements

    @property
    def vocab_size(self) -> int:
        return 3 + 2 * self.n_max + self.n_elements

    @property
    def max_len(self) -> int:
        """Longest sequence: BOS, N, then an (element, count) pair per atom at most, EOS."""
        return 3 + 2 * min(self.n_max, self.n_elements)

    def encode(self, counts: np.ndarray) -> np.ndarray:
        """(B, V) non-negative integer counts → (B, max_len) int64 tokens, PAD after EOS."""
        counts = np.asarray(counts)
        if counts.ndim != 2 or counts.shape[1] != self.n_elements:
            raise ValueError(f"need counts of shape (B, {self.n_elements}), got {counts.shape}")
        if (counts < 0).any() or not np.array_equal(counts, np.round(counts)):
            raise ValueError("counts must be non-negative integers")
        n = counts.sum(1)
        if (n < 1).any() or (n > self.n_max).any():
            raise ValueError(f"every composition needs 1..{self.n_max} atoms")
        out = np.full((len(counts), self.max_len), PAD, dtype=np.int64)
        for b, row in enumerate(counts.astype(np.int64)):
            seq = [BOS, self.n_offset + int(n[b]) - 1]
            for k in np.flatnonzero(row):
                seq += [self.element_offset + int(k), self.count_offset + int(row[k]) - 1]
            out[b, : len(seq) + 1] = [*seq, EOS]
        return out

    def decode(self, tokens: Tensor | np.ndarray) -> np.ndarray:
        """(B, L) grammatical tokens → (B, V) int64 counts."""
        tokens = np.asarray(tokens)
        counts = np.zeros((len(tokens), self.n_elements), dtype=np.int64)
        is_el = (tokens >= self.element_offset) & (tokens < self.count_offset)
        b, pos = np.nonzero(is_el)
        counts[b, tokens[b, pos] - self.element_offset] = tokens[b, pos + 1] - self.count_offset + 1
        return counts

    def advance(self, tok: Tensor, rem: Tensor, last: Tensor, phase: Tensor
                ) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
        """State after reading token ``tok`` (B,), from state (remaining atoms, last element
        index or −1, phase), each (B,) int64. Phase 0: expect N; 1: expect element or EOS;
        2: expect a count; 3: done (only PAD)."""
        is_n = (tok >= self.n_offset) & (tok < self.element_offset)
        is_e = (tok >= self.element_offset) & (tok < self.count_offset)
        is_c = tok >= self.count_offset
        rem = torch.where(is_n, tok - self.n_offset + 1, rem)
        rem = torch.where(is_c, rem - (tok - self.count_offset + 1), rem)
        last = torch.where(is_e, tok - self.element_offset, last)
        phase = torch.where(tok == BOS, 0, phase)
        phase = torch.where(is_n | is_c, 1, phase)
        phase = torch.where(is_e, 2, phase)
        phase = torch.where((tok == EOS) | (tok == PAD), 3, phase)
        return rem, last, phase

    def start(self, batch: int) -> tuple[Tensor, Tensor, Tensor]:
        """The state before any token, for ``batch`` sequences."""
        return (torch.zeros(batch, dtype=torch.long), torch.full((batch,), -1, dtype=torch.long),
                torch.zeros(batch, dtype=torch.long))  # fmt: skip

    def states(self, tokens: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The `advance` state after each prefix tokens[:, :p+1], each (B, L) int64."""
        state, out = self.start(len(tokens)), []
        for p in range(tokens.shape[1]):
            state = self.advance(tokens[:, p], *state)
            out.append(state)
        rem, last, phase = (torch.stack(x, 1) for x in zip(*out, strict=True))
        return rem, last, phase

    def allowed(self, rem: Tensor, last: Tensor, phase: Tensor) -> Tensor:
        """(..., vocab) bool: tokens the grammar admits next, given the state tensors (...)."""
        v = torch.arange(self.vocab_size)
        shape = (*rem.shape, 1)
        rem, last, phase = rem.reshape(shape), last.reshape(shape), phase.reshape(shape)
        is_n = (v >= self.n_offset) & (v < self.element_offset)
        is_e = (v >= self.element_offset) & (v < self.count_offset)
        is_c = v >= self.count_offset
        el, cnt = v - self.element_offset, v - self.count_offset + 1
        ok_n = (phase == 0) & is_n
        ok_e = (phase == 1) & (rem > 0) & is_e & (el > last)
        ok_eos = (phase == 1) & (rem == 0) & (v == EOS)
        last_el = last == self.n_elements - 1
        ok_c = (phase == 2) & is_c & (cnt <= rem) & (~last_el | (cnt == rem))
        ok_pad = (phase == 3) & (v == PAD)
        return ok_n | ok_e | ok_eos | ok_c | ok_pad
