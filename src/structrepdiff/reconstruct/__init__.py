"""Reconstruction: representation vector -> crystal, by gradient descent inside basin hopping."""
