"""Denoising diffusion on vectors (docs/method.md): the schedule, `q_sample`, the loss and the
samplers (`ddpm`), and the denoisers (`denoisers`, `unet1d`). These modules see only tensors and
import only torch and numpy; binding them to crystals, feature files and checkpoints is the
pipeline layer's job (`structrepdiff.pipeline.train`, `.sample`, `.checkpoint`)."""
