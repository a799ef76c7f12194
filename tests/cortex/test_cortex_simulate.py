"""The simulator's ground truth: contiguous domains, smooth retinotopy, tuning that matches each domain's family,
noise of the configured size, NaN vessels."""

import numpy as np
import pytest
from scipy import ndimage

from tunelab.cortex.images import grating
from tunelab.cortex.simulate import CorticalSheet, SheetConfig, make_contiguous
from tunelab.errors import UserError


def test_domains_are_contiguous_and_all_present(small_sheet):
    labels = small_sheet.domain_map
    assert set(np.unique(labels)) == set(range(len(small_sheet.config.domains)))
    for domain in np.unique(labels):
        assert ndimage.label(labels == domain)[1] == 1


def test_make_contiguous_reassigns_fragments():
    labels = np.zeros((6, 6), dtype=int)
    labels[:, 3:] = 1
    labels[1, 1] = 1  # a detached island of domain 1 inside domain 0
    fixed = make_contiguous(labels)
    assert fixed[1, 1] == 0 and ndimage.label(fixed == 1)[1] == 1


def test_retinotopy_is_smooth_and_spans_the_configured_range(small_sheet):
    centres = small_sheet.rf_centres.reshape(24, 24, 2)
    step = np.abs(np.diff(centres, axis=0)).max()
    assert step < 2.0  # neighbouring pixels see nearby points of the image
    span = np.linalg.norm(centres[0, 0] - centres[-1, -1])
    assert 0.6 * 10.0 < span < 2.0 * 10.0


def _mean_by_domain(sheet, responses, family, parameter):
    wanted = [d for d, spec in enumerate(sheet.config.domains) if spec == (family, parameter)]
    inside = np.isin(sheet.domain_map.ravel(), wanted)
    return responses[..., inside].mean(), responses[..., ~inside].mean()


def test_colour_domains_prefer_their_hue(small_sheet):
    red = np.zeros((1, 3, 32, 32), np.float32)
    red[:, 0] = 0.9
    red[:, 1:] = 0.1
    blue_green = red[:, [2, 1, 0]] * 0 + np.array([0.1, 0.55, 0.9], np.float32)[None, :, None, None]
    for image, parameter in ((red, 0.0), (blue_green, 0.6)):
        inside, outside = _mean_by_domain(small_sheet, small_sheet.signal(image), "colour", parameter)
        assert inside > 1.5 * outside


def test_edge_domains_prefer_their_orientation(small_sheet):
    horizontal = grating(32, "horizontal")[None]
    vertical = grating(32, "vertical")[None]
    responses = small_sheet.signal(np.concatenate([horizontal, vertical]))
    horizontal_domain = small_sheet.domain_map.ravel() == small_sheet.config.domains.index(("edges", 0.0))
    vertical_domain = small_sheet.domain_map.ravel() == small_sheet.config.domains.index(("edges", 2.0))
    assert responses[0, horizontal_domain].mean() > 1.5 * responses[1, horizontal_domain].mean()
    assert responses[1, vertical_domain].mean() > 1.5 * responses[0, vertical_domain].mean()


def test_noise_matches_configuration_and_vessels_are_nan(small_sheet, small_bank):
    responses = small_sheet.record(small_bank.images[:80], repeats=6, seed=5)
    vessels = small_sheet.vessel_mask.ravel()
    assert np.isnan(responses[:, :, vessels]).all() and not np.isnan(responses[:, :, ~vessels]).any()
    config = small_sheet.config
    expected = config.noise_sd ** 2 + config.shared_noise_sd ** 2 * (small_sheet.shared_patterns ** 2).sum(0)
    measured = responses.var(axis=1, ddof=1).mean(axis=0)
    ratio = measured[~vessels] / expected[~vessels]
    assert np.median(ratio) == pytest.approx(1.0, abs=0.05)
    again = small_sheet.record(small_bank.images[:4], repeats=2, seed=5)
    np.testing.assert_array_equal(again, small_sheet.record(small_bank.images[:4], repeats=2, seed=5))


def test_same_seed_same_sheet_and_bad_config_is_a_user_error():
    config = SheetConfig(height=12, width=12, image_size=32, calibration_images=16, seed=9)
    a, b = CorticalSheet(config), CorticalSheet(config)
    np.testing.assert_array_equal(a.domain_map, b.domain_map)
    with pytest.raises(UserError, match="unknown feature family"):
        SheetConfig(domains=(("colour", 0.0), ("smell", None)))
    with pytest.raises(UserError, match="images must be"):
        a.signal(np.zeros((2, 3, 64, 64), np.float32))


@pytest.mark.parametrize("side", [32, 64])
def test_every_default_domain_is_large_enough_to_be_found(side):
    """The seven default domains on small and default sheets over many seeds: none falls under the minimum share
    (without the minimum, 7 of these 12 seeds at 32 x 32 and 2 at 64 x 64 leave a domain under 3 %)."""
    from tunelab.cortex.simulate import MIN_DOMAIN_FRACTION, draw_domain_map

    config = SheetConfig(height=side, width=side)
    for seed in range(12):
        labels = draw_domain_map(config, np.random.default_rng(seed))
        shares = np.bincount(labels.ravel(), minlength=len(config.domains)) / labels.size
        assert shares.min() >= MIN_DOMAIN_FRACTION, (seed, shares)


def test_recording_holds_the_requested_share_of_faces():
    from tunelab.cortex.pipeline import simulate_recording

    config = SheetConfig(height=8, width=8, calibration_images=16)
    shares = [np.mean(["face" in s for s in simulate_recording(config, 200, 2, seed=1, face_fraction=f)[1]
                       .images.sources]) for f in (0.0, 0.5)]
    assert shares[0] == 0.0 and 0.4 < shares[1] < 0.6
