"""The steps a study runs end to end (used by the CLI, the demo and the benchmarks): simulate a recording, map a
fitted model onto domains, verify the map by new imaging."""

from __future__ import annotations

from tunelab.cortex import mapping, verify
from tunelab.cortex.domain_map import DomainMap
from tunelab.cortex.features import image_statistics
from tunelab.cortex.images import ImageBank, offline_bank
from tunelab.cortex.recording import Recording
from tunelab.cortex.simulate import CorticalSheet, SheetConfig
from tunelab.errors import UserError


# share of recorded images holding a composited face: with the banks' 8 %, about 130 training faces, a fitted model
# learnt no face feature for a small face domain (held-out seed 10: 278 pixels, AUC 0.66 for face images); with 20 %
# it did (AUC 0.83) and the domain was named "face"
RECORDING_FACE_FRACTION = 0.2


def simulate_recording(config: SheetConfig | None = None, n_images: int = 2000, repeats: int = 2, seed: int = 0,
                       face_fraction: float = RECORDING_FACE_FRACTION) -> tuple[CorticalSheet, Recording]:
    """A sheet and one imaging session of it on offline photo patches (images and noise seeded from `seed`), a
    `face_fraction` of them with a composited face."""
    sheet = CorticalSheet(config or SheetConfig())
    bank = offline_bank(n_images, sheet.config.image_size, seed=seed + 1, face_fraction=face_fraction)
    responses = sheet.record(bank.images, repeats, seed=seed + 2)
    return sheet, Recording(responses, bank, (sheet.config.height, sheet.config.width), sheet.domain_map)


# profile -> the count rule chosen for it on a held-out simulation seed (see docs/cortex.md)
COUNT_RULE = {"readout": "merge_gap", "responses": "silhouette"}


def map_domains(fitted, bank: ImageBank, k: int = 25, n_domains: int | None = None, profile_images: int = 1000,
                progress: bool = False, profile: str = "readout") -> DomainMap:
    """Preferred images of every pixel (one batched pass over the bank), domains from each pixel's profile
    ("readout": its readout feature vector; "responses": z-scored predicted responses to the first
    `profile_images` bank images), domain preferred images and labels."""
    if profile not in COUNT_RULE:
        raise UserError(f"unknown profile {profile!r}; choose {' or '.join(COUNT_RULE)}")
    predict = mapping.model_predictor(fitted)
    top_indices, top_values, speed = mapping.top_k_preferred(predict, bank.images, k, progress=progress)
    probe = bank.images[:profile_images]
    predictions = fitted.predict(probe)
    profiles = mapping.readout_profiles(fitted) if profile == "readout" else mapping.response_profiles(predictions)
    domain_map, info = mapping.cluster_domains(profiles, fitted.unit_pixels, fitted.sheet_shape, n_domains,
                                               choose_by=COUNT_RULE[profile])
    info["profile"] = profile
    unit_labels = domain_map.ravel()[fitted.unit_pixels]
    all_predictions = predictions if profile_images >= len(bank) else fitted.predict(bank.images)
    preferred = mapping.domain_preferred_images(all_predictions, unit_labels, k)
    labels, scores = mapping.label_domains(preferred, bank.images, image_statistics(bank.images))
    return DomainMap(domain_map, labels, scores, top_indices, top_values, preferred, speed, info, fitted.unit_pixels)


def verify_in_silico(sheet: CorticalSheet, result: DomainMap, bank: ImageBank, repeats: int = 4, seed: int = 12345
                     ) -> dict:
    """New imaging of the simulated sheet with each recovered domain's preferred images; selectivity, ARI against
    the true map, preferred-feature accuracy, the family confusion table (true family x recovered label, pixels)
    and the recovered label of each true domain."""
    domain_images = {d: bank.images[idx] for d, idx in result.domain_preferred.items()}
    session, set_of_image, set_domains = verify.in_silico_session(sheet, domain_images, repeats, seed)
    per_set = verify.set_responses(session, set_of_image)
    selectivity = verify.domain_selectivity(per_set, result.domain_map, set_domains)
    families = [family for family, _ in sheet.config.domains]
    return {
        "ari": verify.map_agreement(sheet.domain_map, result.domain_map),
        "preferred_feature_accuracy": verify.preferred_feature_accuracy(sheet.domain_map, families, result.domain_map,
                                                                        result.labels),
        "true_domains": len(families),
        "recovered_domains": len(result.labels),
        "family_confusion": verify.family_confusion(sheet.domain_map, families, result.domain_map, result.labels),
        "per_true_domain": verify.recovered_families(sheet.domain_map, families, result.domain_map, result.labels),
        **selectivity,
    }
