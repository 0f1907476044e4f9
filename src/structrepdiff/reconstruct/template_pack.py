"""Template crystals packed inside a model file, so that decoding needs no data directory.

A pack is the training split's template file (`TemplateSet.save`, .npz) and, for a model
that reconstructs inside space groups, the split on Wyckoff parameters
(`describe_split` JSON, zlib-compressed), both as uint8 tensors under the checkpoint's
``templates`` key with the dataset and split they come from; it loads with
``torch.load(weights_only=True)``. Decoding unpacks it once into the cache folder (named by
the bytes' sha256) and reads it like any template file.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from pathlib import Path
from typing import Any

PACK_KEY = "templates"


def pack_templates(dataset: str, split: str, data_dir: str | None = None,
                   cache_dir: str | os.PathLike | None = None, symmetric: bool = False
                   ) -> dict[str, Any]:  # fmt: skip
    """The pack of ``dataset``/``split`` (built from the data directory through the template
    caches); ``symmetric`` adds the split on Wyckoff parameters."""
    import torch

    from structrepdiff.reconstruct.templates import cached_templates_path

    def tensor(raw: bytes) -> torch.Tensor:
        return torch.frombuffer(bytearray(raw), dtype=torch.uint8)

    pack = {"dataset": dataset, "split": split,
            "free": tensor(cached_templates_path(dataset, split, data_dir, cache_dir)
                           .read_bytes())}  # fmt: skip
    if symmetric:
        from structrepdiff.symmetry.analyze import cached_description_path

        raw = cached_description_path(dataset, split, data_dir, cache_dir).read_bytes()
        pack["wyckoff"] = tensor(zlib.compress(raw, 9))
    return pack


def unpack_templates(pack: dict[str, Any], symmetric: bool = False,
                     cache_dir: str | os.PathLike | None = None) -> Path | None:  # fmt: skip
    """The template file of a pack (the Wyckoff JSON with ``symmetric``), written once under
    the cache folder; None when the pack has no such part."""
    from structrepdiff.data.atomic import atomic_write
    from structrepdiff.data.paths import default_cache_dir

    part = pack.get("wyckoff" if symmetric else "free")
    if part is None:
        return None
    raw = part.numpy().tobytes()
    digest = hashlib.sha256(raw).hexdigest()[:16]
    suffix = ".json" if symmetric else ".npz"
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = root / "bundled" / f"{pack['dataset']}_{pack['split']}_{digest}{suffix}"
    if not path.is_file():
        data = zlib.decompress(raw) if symmetric else raw
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda p: Path(p).write_bytes(data), force=True, suffix=suffix)
    return path


def checkpoint_pack(path: str | os.PathLike | None) -> dict[str, Any] | None:
    """The template pack of a checkpoint file or bundled model name, or None (no file, no
    pack, unreadable)."""
    from structrepdiff.bundled import resolve_model

    if path is None or not (path := resolve_model(path)).is_file():
        return None
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not a checkpoint: there is no pack to use
        return None
    pack = ckpt.get(PACK_KEY) if isinstance(ckpt, dict) else None
    return pack if isinstance(pack, dict) else None


def package_pack(dataset: str | None, split: str | None = None) -> dict[str, Any] | None:
    """The pack of the bundled model of ``dataset`` when its split is ``split`` (or ``split``
    is not known): the templates a user's own features of that dataset's elements start from."""
    from structrepdiff.bundled import BUNDLED, bundled_model_dir

    if dataset not in BUNDLED:
        return None
    pack = checkpoint_pack(bundled_model_dir() / f"{dataset}.pt")
    if pack is None or (split is not None and pack.get("split") != split):
        return None
    return pack


def pack_structures(pack: dict[str, Any], limit: int | None = None) -> list:
    """The first ``limit`` template crystals of a pack as pymatgen Structures (the reference
    crystals of a model's report when no data directory is at hand)."""
    from pymatgen.core import Lattice, Structure

    from structrepdiff.reconstruct.templates import TemplateSet

    ts = TemplateSet.load(unpack_templates(pack))
    n = len(ts) if limit is None else min(limit, len(ts))
    return [Structure(Lattice.from_parameters(*ts.lattice[k]), ts.numbers[k].tolist(),
                      ts.frac[k]) for k in range(n)]  # fmt: skip
