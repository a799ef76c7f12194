"""A recovered domain map and its files: `DomainMap.save(folder)` writes map.npz + map.json, `DomainMap.load(folder)`
reads them back (also maps written before the preferred images were stored as one flat array).

  map.npz   domain_map [H, W] (-1 masked), top_indices / top_values [unit, k], unit_pixels [unit] (when known),
            preferred_domains [D], preferred_counts [D], preferred_indices [sum of counts] (bank indices of each
            domain's preferred images, domain by domain)
  map.json  n_domains, labels, label_scores, images_per_second, clustering, plus what the caller adds
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np

from tunelab.errors import UserError


@dataclasses.dataclass
class DomainMap:
    domain_map: np.ndarray  # [H, W], -1 = masked pixel
    labels: dict[int, str]  # feature family per domain
    label_scores: dict[int, dict[str, float]]
    top_indices: np.ndarray  # [n_units, k] bank indices of each unit's preferred images
    top_values: np.ndarray
    domain_preferred: dict[int, np.ndarray]  # bank indices of each domain's preferred images
    images_per_second: float
    clustering: dict
    unit_pixels: np.ndarray | None = None  # sheet pixel of each unit (row of top_indices)

    def summary(self) -> dict:
        return {"n_domains": int(len(self.labels)), "labels": {str(k): v for k, v in self.labels.items()},
                "images_per_second": self.images_per_second, "clustering": self.clustering}

    def save(self, folder: str | Path, extra_summary: dict | None = None) -> dict:
        """Write folder/map.npz and folder/map.json (atomically); returns the JSON written."""
        from tunelab.io import atomic_write_bytes, atomic_write_json

        folder = Path(folder)
        domains = sorted(self.domain_preferred)
        arrays = {"domain_map": self.domain_map, "top_indices": self.top_indices, "top_values": self.top_values,
                  "preferred_domains": np.asarray(domains, dtype=np.int64),
                  "preferred_counts": np.asarray([len(self.domain_preferred[d]) for d in domains], dtype=np.int64),
                  "preferred_indices": np.concatenate([np.asarray(self.domain_preferred[d], dtype=np.int64)
                                                       for d in domains]) if domains else np.zeros(0, np.int64)}
        if self.unit_pixels is not None:
            arrays["unit_pixels"] = self.unit_pixels
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        atomic_write_bytes(folder / "map.npz", buffer.getvalue())
        summary = self.summary() | {"label_scores": {str(d): s for d, s in self.label_scores.items()}}
        summary |= extra_summary or {}
        atomic_write_json(folder / "map.json", summary)
        return summary

    @classmethod
    def load(cls, folder: str | Path) -> "DomainMap":
        folder = Path(folder)
        if not (folder / "map.npz").exists() or not (folder / "map.json").exists():
            raise UserError(f"no map in {folder} (expected map.npz and map.json; run `tunelab cortex map` first)")
        try:
            summary = json.loads((folder / "map.json").read_text())
            with np.load(folder / "map.npz", allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
        except (ValueError, OSError) as err:
            raise UserError(f"cannot read the map in {folder}: {err}") from None
        missing = [k for k in ("domain_map", "top_indices", "top_values") if k not in arrays]
        missing += [k for k in ("labels", "images_per_second", "clustering") if k not in summary]
        if missing:
            raise UserError(f"the map in {folder} lacks {', '.join(missing)}")
        return cls(arrays["domain_map"], {int(k): v for k, v in summary["labels"].items()},
                   {int(k): v for k, v in summary.get("label_scores", {}).items()}, arrays["top_indices"],
                   arrays["top_values"], preferred_from_arrays(arrays), summary["images_per_second"],
                   summary["clustering"], arrays.get("unit_pixels"))


def preferred_from_arrays(arrays: dict[str, np.ndarray]) -> dict[int, np.ndarray]:
    """Each domain's preferred images: the flat layout, or the older one array per domain (`domain_{d}`)."""
    if "preferred_domains" in arrays:
        bounds = np.cumsum(arrays["preferred_counts"])[:-1]
        parts = np.split(arrays["preferred_indices"], bounds)
        return {int(d): part for d, part in zip(arrays["preferred_domains"], parts)}
    return {int(k.split("_")[1]): v for k, v in arrays.items() if k.startswith("domain_") and k != "domain_map"}
