"""Every feature family of the default simulation is present, tuned to its own probes, and named after itself by
the labelling rule, on a sheet where curvature, edges and faces are all present."""

import numpy as np
import pytest

from tunelab.cortex import mapping
from tunelab.cortex.features import FAMILIES, image_statistics
from tunelab.cortex.images import grating, offline_bank, offline_faces, paste_face
from tunelab.cortex.simulate import DEFAULT_DOMAINS, CorticalSheet, SheetConfig


@pytest.fixture(scope="module")
def family_sheet() -> CorticalSheet:
    """The default domains (every family) on a small sheet seeing 64 x 64 images (faces need the resolution)."""
    sheet = CorticalSheet(SheetConfig(height=32, width=32, calibration_images=128, seed=6))
    assert set(np.unique(sheet.domain_map)) == set(range(len(sheet.config.domains)))  # no domain lost on this sheet
    return sheet


@pytest.fixture(scope="module")
def family_bank():
    return offline_bank(600, size=64, seed=17)


def _domain_mean(sheet, responses, family):
    inside = sheet.domain_map.ravel() == [f for f, _ in sheet.config.domains].index(family)
    return responses[..., inside].mean(-1)


def test_curvature_and_edge_domains_answer_their_own_probes(family_sheet):
    size = 64
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    disc = np.repeat(((yy ** 2 + xx ** 2) < 100).astype(np.float32)[None], 3, 0)
    lines = grating(size, "horizontal")
    responses = family_sheet.signal(np.stack([disc, lines]))
    curvature, edges = _domain_mean(family_sheet, responses, "curvature"), _domain_mean(family_sheet, responses, "edges")
    # each domain's preference between the two probes, as a ratio of responses
    assert curvature[0] / curvature[1] > 1.5 * edges[0] / edges[1]


def test_face_domain_answers_composited_faces(family_sheet, family_bank):
    rng = np.random.default_rng(0)
    faces = offline_faces()
    plain = [i for i, s in enumerate(family_bank.sources) if "face" not in s][:40]
    backgrounds = family_bank.images[plain]
    with_faces = np.stack([paste_face(b.transpose(1, 2, 0), faces[int(rng.integers(len(faces)))], rng)
                           .transpose(2, 0, 1) for b in backgrounds]).astype(np.float32)
    gain = family_sheet.signal(with_faces) - family_sheet.signal(backgrounds)
    face_gain = _domain_mean(family_sheet, gain, "face").mean()
    others = [_domain_mean(family_sheet, gain, family).mean() for family in ("edges", "curvature", "texture")]
    assert face_gain > 0 and face_gain > 2 * max(others)


def test_labels_name_every_true_domain_from_its_preferred_images(family_sheet, family_bank):
    """The true domains' preferred images under the noise-free response: each is named after its own family.
    Curvature and edges domains are both present; image contrast raises both statistics together."""
    usable = ~family_sheet.vessel_mask.ravel()
    signal = family_sheet.signal(family_bank.images)[:, usable]
    preferred = mapping.domain_preferred_images(signal, family_sheet.domain_map.ravel()[usable], k=25)
    labels, scores = mapping.label_domains(preferred, family_bank.images, image_statistics(family_bank.images))
    assert labels == {d: family for d, (family, _) in enumerate(family_sheet.config.domains)}
    assert set(scores[0]) == set(FAMILIES)
