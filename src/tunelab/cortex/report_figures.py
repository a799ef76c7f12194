"""Figures of the cortex report: true and recovered domain maps in matching colours (each recovered domain drawn in
the colour of the true domain it overlaps most, one to one), masked pixels in their own colour with the rule that
masked them, the FEVE histogram with its median, and every recovered domain's most-exciting and preferred images."""

from __future__ import annotations

import numpy as np

from tunelab.errors import UserError

# One hue per feature family; domains of one family are shades of it (mixed with white), so a family reads as one
# colour in both maps while neighbouring domains of that family stay apart.
FAMILY_HUES = {"colour": "#c0392b", "texture": "#a0522d", "edges": "#1f5fa8", "curvature": "#1e8449",
               "face": "#7d3c98"}
OTHER_HUES = ("#b7950b", "#117a65", "#943126", "#5b2c6f")  # families outside FAMILY_HUES
MASK_COLOUR = "#dcdcdc"  # light grey: pixels with no usable fit
UNMATCHED_COLOUR = "#4d4d4d"  # dark grey: recovered domains that match no true domain one to one
MASK_RULE = "masked: no signal on > half the trials\n(vessel, dropped frames), so no fit"
VESSEL_NOTE = "vessel (no signal)"


def family_colours(true_families: list[str]) -> list[tuple[float, float, float]]:
    """An RGB colour per true domain: its family's hue, a lighter shade for each further domain of that family."""
    from matplotlib.colors import to_rgb

    others = iter(OTHER_HUES * (1 + len(true_families)))
    hues = {f: to_rgb(FAMILY_HUES.get(f) or next(others)) for f in dict.fromkeys(true_families)}
    counts = {f: true_families.count(f) for f in hues}
    seen = dict.fromkeys(hues, 0)
    colours = []
    for family in true_families:
        mix = 0.55 * seen[family] / max(counts[family] - 1, 1)  # 0 (full hue) .. 0.55 towards white
        colours.append(tuple(float(c + mix * (1 - c)) for c in hues[family]))
        seen[family] += 1
    return colours


def match_domains(true_map: np.ndarray, recovered_map: np.ndarray) -> dict[int, int]:
    """Recovered domain -> the true domain it is paired with: the one-to-one assignment (Hungarian) maximising the
    pixels they share, over pixels usable in both maps (>= 0). Recovered domains left over, or sharing no pixel
    with their partner, are unmatched (absent)."""
    from scipy.optimize import linear_sum_assignment

    if true_map.shape != recovered_map.shape:
        raise UserError(f"map shapes differ: {true_map.shape} vs {recovered_map.shape}")
    usable = (true_map >= 0) & (recovered_map >= 0)
    recovered_ids = np.unique(recovered_map[recovered_map >= 0])
    true_ids = np.unique(true_map[true_map >= 0])
    if not len(recovered_ids) or not len(true_ids):
        return {}
    overlap = np.zeros((len(recovered_ids), len(true_ids)), dtype=int)
    np.add.at(overlap, (np.searchsorted(recovered_ids, recovered_map[usable]),
                        np.searchsorted(true_ids, true_map[usable])), 1)
    rows, cols = linear_sum_assignment(-overlap)
    return {int(recovered_ids[r]): int(true_ids[c]) for r, c in zip(rows, cols) if overlap[r, c] > 0}


def majority_domains(true_map: np.ndarray, recovered_map: np.ndarray) -> dict[int, int]:
    """Recovered domain -> the true domain holding most of its pixels (pixels usable in both maps)."""
    usable = (true_map >= 0) & (recovered_map >= 0)
    out = {}
    for d in np.unique(recovered_map[usable]):
        out[int(d)] = int(np.bincount(true_map[usable & (recovered_map == d)]).argmax())
    return out


def recovered_colours(recovered_ids, match: dict[int, int], true_colours: list) -> dict[int, tuple]:
    """Each recovered domain in its matched true domain's colour; unmatched ones in UNMATCHED_COLOUR."""
    from matplotlib.colors import to_rgb

    return {int(d): tuple(true_colours[match[int(d)]]) if int(d) in match else to_rgb(UNMATCHED_COLOUR)
            for d in recovered_ids}


def colour_image(domain_map: np.ndarray, colours: dict[int, tuple]) -> np.ndarray:
    """An RGB image [H, W, 3] of a domain map: each domain in its colour, masked pixels (-1) in MASK_COLOUR."""
    from matplotlib.colors import to_rgb

    image = np.empty((*domain_map.shape, 3))
    image[:] = to_rgb(MASK_COLOUR)
    for domain, colour in colours.items():
        image[domain_map == domain] = colour
    missing = set(np.unique(domain_map[domain_map >= 0]).tolist()) - set(colours)
    if missing:
        raise UserError(f"no colour for domains {sorted(missing)}")
    return image


def recovered_legend_names(labels: dict[int, str], match: dict[int, int], true_names: list[str]) -> dict[int, str]:
    """Legend text per recovered domain: its number, its label and the true domain it matches (or none)."""
    return {d: f"{d}: {label} = true {true_names[match[d]]}" if d in match else f"{d}: {label} (unmatched)"
            for d, label in sorted(labels.items())}


def _draw_map(ax, domain_map, colours, names, title, numbers: bool, mask_label: str):
    from matplotlib.patches import Patch

    ax.imshow(colour_image(domain_map, colours), interpolation="nearest")
    if numbers:  # the domain number at each domain's centre, to find it in the legend
        for d in colours:
            rows, cols = np.nonzero(domain_map == d)
            if len(rows):
                ax.text(cols.mean(), rows.mean(), str(d), ha="center", va="center", fontsize=8, color="white",
                        fontweight="bold")
    handles = [Patch(facecolor=colours[d], edgecolor="none", label=names[d]) for d in colours]
    if (domain_map < 0).any():
        handles.append(Patch(facecolor=MASK_COLOUR, edgecolor="#999999", label=mask_label))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), fontsize=7, ncol=2, frameon=False,
              handlelength=1.2, columnspacing=0.8)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_maps(true_map: np.ndarray, true_families: list[str], true_names: list[str], recovered_map: np.ndarray,
              labels: dict[int, str], axes, mask_rule: str = MASK_RULE) -> dict[int, tuple]:
    """True (left axis) and recovered (right axis) maps in matching colours with legends; returns the recovered
    domains' colours (for the image rows). Recovered domains without a label are named "?"."""
    if len(true_families) != len(true_names):
        raise UserError(f"{len(true_families)} families for {len(true_names)} true domain names")
    true_colours = family_colours(list(true_families))
    match = match_domains(true_map, recovered_map)
    ids = np.unique(recovered_map[recovered_map >= 0]).tolist()
    labels = {int(d): labels.get(int(d), "?") for d in ids}
    colours = recovered_colours(ids, match, true_colours)
    true_ids = np.unique(true_map[true_map >= 0]).tolist()
    _draw_map(axes[0], true_map, {d: true_colours[d] for d in true_ids}, dict(enumerate(true_names)),
              "true domains", numbers=False, mask_label=VESSEL_NOTE)
    _draw_map(axes[1], recovered_map, colours, recovered_legend_names(labels, match, list(true_names)),
              "recovered domains (colour of the matched true domain)", numbers=True,
              mask_label=mask_rule)
    return colours


def plot_feve_histogram(feve: np.ndarray, median: float, ax, lower: float = -0.5, bins: int = 40) -> None:
    """Histogram of per-pixel test FEVE (values below `lower` piled at `lower`; undefined FEVE left out) with the
    median marked."""
    values = np.asarray(feve, dtype=float)
    finite = values[np.isfinite(values)]
    ax.hist(np.clip(finite, lower, 1), bins=bins, range=(lower, 1), color="#7f8c8d")
    ax.axvline(median, color="#c0392b", linewidth=1.5, label=f"median {median:.2f}")
    left_out = len(values) - len(finite)
    ax.set_xlabel(f"test FEVE per pixel (below {lower:g} shown at {lower:g})", fontsize=8)
    ax.set_ylabel("number of pixels", fontsize=8)
    ax.set_title("model fit per pixel" + (f" ({left_out} pixels undefined)" if left_out else ""), fontsize=9)
    ax.legend(fontsize=7, frameon=False, loc="upper left")


def plot_domain_images(rows: dict[str, tuple[np.ndarray | None, np.ndarray]], colours: dict[str, tuple] | None = None,
                       per_row: int = 10):
    """One row per domain: its most-exciting image (framed in the domain's colour; None to leave out), then its top
    preferred images. rows: title -> (MEI [3, S, S] or None, preferred images [k, 3, S, S])."""
    import matplotlib.pyplot as plt

    if not rows:
        raise UserError("no domain to show images of")
    fig, axes = plt.subplots(len(rows), per_row + 1, figsize=((per_row + 1) * 0.85, len(rows) * 1.05), squeeze=False)
    for r, (title, (mei, images)) in enumerate(rows.items()):
        colour = (colours or {}).get(title, "black")
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            picture = mei if c == 0 else (images[c - 1] if c - 1 < len(images) else None)
            if picture is None:
                ax.axis("off")
                continue
            ax.imshow(np.clip(np.asarray(picture).transpose(1, 2, 0), 0, 1))
            for spine in ax.spines.values():
                spine.set_color(colour if c == 0 else "white")
                spine.set_linewidth(3 if c == 0 else 0)
        axes[r, 0].set_title(title, fontsize=7, loc="left", color=colour, fontweight="bold")
    fig.tight_layout(h_pad=0.6, w_pad=0.2)
    return fig
