"""StructRepDiff: crystal generation by diffusion on invariant EAD-based representations."""

__version__ = "0.1.0"
