"""Denoising diffusion on the representation vector R (DESIGN.md §1.3)."""
