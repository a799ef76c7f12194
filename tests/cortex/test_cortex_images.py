import numpy as np
import pytest
import torch

from tunelab.cortex import features
from tunelab.cortex.images import ImageBank, deduplicate, grating, load_image_folder, offline_bank
from tunelab.errors import UserError


def test_offline_bank_is_distinct_fixed_size_patches(small_bank):
    assert small_bank.images.shape == (160, 3, 32, 32)
    assert small_bank.images.min() >= 0 and small_bank.images.max() <= 1
    assert len(deduplicate(small_bank.images)) == len(small_bank)
    assert any("face" in s for s in small_bank.sources)


def test_deduplicate_drops_copies():
    rng = np.random.default_rng(0)
    images = rng.random((5, 3, 32, 32)).astype(np.float32)
    doubled = np.concatenate([images, images[:2] * 0.98 + 0.01])
    np.testing.assert_array_equal(deduplicate(doubled), np.arange(5))


def test_image_folder_loader(tmp_path):
    import skimage.io

    for i, shape in enumerate([(40, 60, 3), (50, 50)]):
        skimage.io.imsave(tmp_path / f"img{i}.png", (np.random.default_rng(i).random(shape) * 255).astype(np.uint8),
                          check_contrast=False)
    bank = load_image_folder(tmp_path, size=32)
    assert bank.images.shape == (2, 3, 32, 32) and bank.sources == ["img0.png", "img1.png"]
    with pytest.raises(UserError, match="not found"):
        load_image_folder(tmp_path / "missing", size=32)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images"):
        load_image_folder(tmp_path / "empty", size=32)


def test_feature_statistics_rank_designed_images():
    size = 32
    flat_gray = np.full((3, size, size), 0.5, np.float32)
    red = flat_gray.copy()
    red[0], red[1], red[2] = 0.9, 0.1, 0.1
    lines = grating(size, "horizontal")
    rng = np.random.default_rng(0)
    noise = np.repeat(rng.random((1, size, size)).astype(np.float32), 3, 0)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    disc = np.repeat(((yy ** 2 + xx ** 2) < 36).astype(np.float32)[None], 3, 0)
    stats = features.image_statistics(np.stack([flat_gray, red, lines, noise, disc]))
    assert stats["colour"].argmax() == 1
    assert stats["edges"].argmax() == 2
    assert stats["texture"].argmax() == 3
    # a disc has curvature everywhere along its border; a straight grating has almost none
    assert stats["curvature"][4] > 5 * stats["curvature"][2]


def _contour(mask: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.repeat(mask.astype(np.float32)[None, None], 3, 1))


def test_curvature_map_answers_curved_contours_not_straight_ones():
    size = 64
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    radius = np.hypot(yy, xx)
    straight = [np.abs(yy) < 1.2, np.abs(xx) < 1.2, np.abs(yy - xx) < 1.7]  # horizontal, vertical, diagonal lines
    rings = [np.abs(radius - r) < 1.2 for r in (6, 8, 12)]
    window = torch.from_numpy(features.central_window(size))

    def centre_drive(mask):
        return float((features.curvature_map(_contour(mask))[0, 0] * window).sum())

    # a straight filter matches a straight line at least as well as any bent one: the rectified difference is ~0
    assert max(centre_drive(m) for m in straight) < 1e-3
    assert min(centre_drive(m) for m in rings) > 0.1
    # and the edge statistic, by contrast, rates the straight line above the ring
    stats = features.image_statistics(torch.cat([_contour(straight[0]), _contour(rings[1])]).numpy())
    assert stats["edges"][0] > stats["edges"][1] and stats["curvature"][1] > 100 * stats["curvature"][0]


def test_unbent_gabor_bank_is_the_edge_bank():
    straight, bent = features.gabor_bank(4), features.gabor_bank(4, bend=0.06)
    assert straight.shape == bent.shape
    assert (straight - bent).abs().max() > 0.05
    np.testing.assert_allclose(features.gabor_bank(4, bend=0.0).numpy(), straight.numpy())
    # unit-norm, zero-mean kernels, so energies compare across bends
    np.testing.assert_allclose(bent.flatten(1).norm(dim=1).numpy(), 1.0, rtol=1e-5)
    assert bent.flatten(1).sum(1).abs().max() < 1e-5
    assert float(features.curvature_map(torch.full((1, 3, 32, 32), 0.5)).max()) < 1e-8


def test_hsv_matches_skimage():
    from skimage.color import rgb2hsv
    import torch

    rng = np.random.default_rng(2)
    images = rng.random((2, 3, 8, 8)).astype(np.float32)
    hue, sat, val = features.hsv(torch.from_numpy(images))
    expected = rgb2hsv(images.transpose(0, 2, 3, 1))
    np.testing.assert_allclose(hue[:, 0].numpy(), expected[..., 0], atol=1e-4)
    np.testing.assert_allclose(sat[:, 0].numpy(), expected[..., 1], atol=1e-4)
    np.testing.assert_allclose(val[:, 0].numpy(), expected[..., 2], atol=1e-6)


def test_face_map_finds_composited_faces_and_stays_silent_elsewhere():
    """The face family's detector on faces it was not tuned with: photo patches of a bank seed no other test uses,
    each with and without a composited LFW face (the same patch, so only the face differs)."""
    from tunelab.cortex.images import offline_faces, paste_face

    rng = np.random.default_rng(3)
    bank = offline_bank(160, size=64, seed=4242, face_fraction=0.0)
    faces = offline_faces()
    with_faces = np.stack([paste_face(b.transpose(1, 2, 0), faces[int(rng.integers(len(faces)))], rng)
                           .transpose(2, 0, 1) for b in bank.images]).astype(np.float32)
    hit = features.face_map(torch.from_numpy(with_faces)).amax((1, 2, 3)).numpy() > 0.5
    false_alarm = features.face_map(torch.from_numpy(bank.images)).amax((1, 2, 3)).numpy() > 0.5
    assert hit.mean() > 0.8 and false_alarm.mean() < 0.1, (hit.mean(), false_alarm.mean())
