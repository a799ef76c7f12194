"""The cortex report's figures: recovered domains take the colour of the true domain they match, masked pixels the
mask colour with the masking rule in the legend, the FEVE histogram is labelled with its median marked, and every
recovered domain gets its image row."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import rgb_to_hsv, to_rgb  # noqa: E402

from tunelab.cortex import report_figures as rf  # noqa: E402
from tunelab.errors import UserError  # noqa: E402

FAMILIES = ["colour", "colour", "edges", "curvature"]
NAMES = ["colour:0", "colour:0.6", "edges:0", "curvature"]


def _truth():
    truth = np.zeros((12, 12), dtype=int)
    truth[:, 6:] = 1
    truth[6:, :6] = 2
    truth[6:, 6:] = 3
    truth[3, :] = -1  # a vessel
    return truth


def test_permuted_recovered_map_takes_the_true_colours():
    truth = _truth()
    permutation = np.array([2, 0, 3, 1])  # true domain t is recovered as number permutation[t]
    recovered = np.where(truth >= 0, permutation[truth], -1)
    match = rf.match_domains(truth, recovered)
    assert match == {int(permutation[t]): t for t in range(4)}
    true_colours = rf.family_colours(FAMILIES)
    colours = rf.recovered_colours(range(4), match, true_colours)
    true_image = rf.colour_image(truth, dict(enumerate(true_colours)))
    assert np.array_equal(rf.colour_image(recovered, colours), true_image)
    assert np.allclose(true_image[3], to_rgb(rf.MASK_COLOUR))  # the masked row


def test_same_family_same_hue_distinct_shades():
    colours = rf.family_colours(FAMILIES)
    hue = rgb_to_hsv(np.array(colours))[:, 0]
    assert hue[0] == pytest.approx(hue[1], abs=1e-6)  # both colour-family domains: one hue
    assert colours[0] != colours[1]  # but told apart
    assert len({tuple(np.round(c, 6)) for c in colours}) == len(colours)
    assert to_rgb(rf.MASK_COLOUR) not in colours and to_rgb(rf.UNMATCHED_COLOUR) not in colours


def test_extra_split_is_unmatched_and_neutral():
    truth = _truth()
    recovered = np.where(truth >= 0, truth, -1)
    recovered[:3, 9:] = 4  # true domain 1 split in two; the smaller part has no partner
    match = rf.match_domains(truth, recovered)
    assert 4 not in match and match[1] == 1
    assert rf.majority_domains(truth, recovered)[4] == 1
    colours = rf.recovered_colours(range(5), match, rf.family_colours(FAMILIES))
    image = rf.colour_image(recovered, colours)
    assert np.allclose(image[0, 10], to_rgb(rf.UNMATCHED_COLOUR))
    assert rf.recovered_legend_names({1: "colour", 4: "edges"}, match, NAMES)[4] == "4: edges (unmatched)"


def test_mismatched_map_shapes_are_refused():
    with pytest.raises(UserError, match="shapes differ"):
        rf.match_domains(np.zeros((3, 3), int), np.zeros((3, 4), int))


def test_map_legends_name_families_matches_and_the_mask_rule():
    truth = _truth()
    recovered = np.where(truth >= 0, truth[:, ::-1], -1)  # mirrored: domains 0 <-> 1, 2 <-> 3
    recovered[3, :] = -1
    fig, axes = plt.subplots(1, 2)
    rf.plot_maps(truth, FAMILIES, NAMES, recovered, {0: "colour", 1: "colour", 2: "curvature", 3: "edges"}, axes)
    true_legend = [t.get_text() for t in axes[0].get_legend().get_texts()]
    recovered_legend = [t.get_text() for t in axes[1].get_legend().get_texts()]
    plt.close(fig)
    assert true_legend[:4] == NAMES
    assert "0: colour = true colour:0.6" in recovered_legend and "3: edges = true edges:0" in recovered_legend
    assert recovered_legend[-1] == rf.MASK_RULE and "half the trials" in rf.MASK_RULE


def test_recovered_domain_drawn_in_its_partner_colour_on_the_axes():
    truth = _truth()
    recovered = np.where(truth >= 0, (truth + 1) % 4, -1)
    fig, axes = plt.subplots(1, 2)
    colours = rf.plot_maps(truth, FAMILIES, NAMES, recovered, {d: "x" for d in range(4)}, axes)
    drawn = axes[1].get_images()[0].get_array()
    plt.close(fig)
    true_colours = rf.family_colours(FAMILIES)
    for t in range(4):
        assert colours[(t + 1) % 4] == true_colours[t]
        rows, cols = np.nonzero(truth == t)
        assert np.allclose(drawn[rows[0], cols[0]], true_colours[t])


def test_feve_histogram_labels_and_median():
    feve = np.array([-2.0, 0.1, 0.5, 0.6, 0.9, np.nan])
    fig, ax = plt.subplots()
    rf.plot_feve_histogram(feve, float(np.nanmedian(feve)), ax)
    assert "FEVE per pixel" in ax.get_xlabel() and ax.get_ylabel() == "number of pixels"
    (line,) = ax.get_lines()
    assert line.get_xdata()[0] == pytest.approx(0.5)
    assert "median 0.50" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert sum(p.get_height() for p in ax.patches) == 5  # every finite value counted, -2 piled at -0.5
    assert "1 pixels undefined" in ax.get_title()
    plt.close(fig)


def test_every_domain_gets_an_image_row_with_its_title():
    rng = np.random.default_rng(0)
    rows = {f"domain {d}: edges (true edges:{d})": (rng.random((3, 8, 8)), rng.random((10, 3, 8, 8)))
            for d in range(5)}
    fig = rf.plot_domain_images(rows, {title: (0.1, 0.2, 0.3) for title in rows}, per_row=10)
    axes = np.array(fig.axes).reshape(5, 11)
    assert [axes[r, 0].get_title(loc="left") for r in range(5)] == list(rows)
    assert all(len(ax.get_images()) == 1 for ax in axes.ravel())  # MEI + 10 preferred in every row
    assert to_rgb(axes[2, 0].spines["left"].get_edgecolor()) == (0.1, 0.2, 0.3)
    plt.close(fig)
    with pytest.raises(UserError):
        rf.plot_domain_images({})
