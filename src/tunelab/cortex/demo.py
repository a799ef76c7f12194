"""The cortex section of `tunelab demo`: simulate a sheet with known domains, fit the encoding model, map
preferred images and domains, verify by in-silico imaging (small scale)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tunelab.report import Section, Table


FIRST_LOOK = {"side": 32, "n_images": 1200, "epochs": 12, "bank_size": 2000}
TOP_K = 25  # preferred images per domain (labels and verification use them all)
PREFERRED_SHOWN = 10  # of which the report draws the first
FULL = {"side": 48, "n_images": 2400, "epochs": 20, "bank_size": 4000}  # `tunelab demo --full`


def run(out_dir: Path, full: bool = False) -> list[Section]:
    sizes = FULL if full else FIRST_LOOK
    side, n_images, epochs, bank_size = (sizes[k] for k in ("side", "n_images", "epochs", "bank_size"))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from tunelab.cortex import mapping
    from tunelab.cortex import report_figures as figures
    from tunelab.cortex.findings import confusion_table, families_phrase, map_findings
    from tunelab.cortex.fit import FitConfig, fit_model
    from tunelab.cortex.images import offline_bank
    from tunelab.cortex.model import ModelConfig
    from tunelab.cortex.pipeline import RECORDING_FACE_FRACTION, map_domains, simulate_recording, verify_in_silico
    from tunelab.cortex.simulate import SheetConfig

    out_dir = Path(out_dir)
    sheet, recording = simulate_recording(SheetConfig(height=side, width=side), n_images, repeats=2, seed=0)
    # a short budget: decaying the lr over 12 epochs cut the median test FEVE from 0.725 to 0.673 on a held-out
    # simulation of this size (seed 10); the cosine decay pays off at the default 30 epochs (docs/cortex.md)
    fitted, report = fit_model(recording, ModelConfig(), FitConfig(epochs=epochs, lr_schedule="constant"))
    bank = offline_bank(bank_size, sheet.config.image_size, seed=100)
    result = map_domains(fitted, bank, k=TOP_K, progress=True)
    verification = verify_in_silico(sheet, result, bank)
    true_names = sheet.config.domain_names()
    match = figures.match_domains(sheet.domain_map, result.domain_map)
    majority = figures.majority_domains(sheet.domain_map, result.domain_map)

    section = Section(
        title="V4 natural-image map (simulated cortex)",
        prose=(f"A simulated {side} x {side}-pixel cortical sheet with {len(sheet.config.domains)} contiguous domains "
               f"tuned to {families_phrase([f for f, _ in sheet.config.domains])} saw {n_images} photo patches "
               f"(2 repeats; {RECORDING_FACE_FRACTION:.0%} of them with a composited face). "
               "A CNN core with a Gaussian readout per pixel (positions predicted from cortical coordinates) was fit; "
               "it ranked a separate bank of photo patches for every pixel at once, pixels were clustered into "
               "spatially contiguous domains by their predicted response profiles, each domain was named from the "
               "image statistics of its preferred images, and each domain's preferred images were shown to the "
               "simulated sheet again (in-silico verification). "
               + map_findings(verification, result.labels, true_names, match, majority)),
    )
    test = report["test"]
    section.key_numbers = {
        "test median FEVE": round(test["median_feve"], 3),
        "recovered-domain ARI": round(verification["ari"], 3),
        "preferred-feature accuracy": round(verification["preferred_feature_accuracy"], 3),
        "share of domains preferring their own images": round(verification["fraction_preferring_own_set"], 3),
        "preference search (images/s)": round(result.images_per_second),
    }
    section.results = {"fit": {k: v for k, v in report.items() if k not in ("per_unit", "split")},
                       "map": result.summary(), "verification": verification,
                       "matched_true_domain": {str(d): true_names[t] for d, t in match.items()}}
    truth = np.where(sheet.vessel_mask, -1, sheet.domain_map)
    fig, axes = plt.subplots(1, 3, figsize=(13, 5.4), gridspec_kw={"width_ratios": [1, 1, 1.15]})
    colours = figures.plot_maps(truth, [f for f, _ in sheet.config.domains], true_names, result.domain_map,
                                result.labels, axes[:2])
    figures.plot_feve_histogram(report["per_unit"]["feve"], test["median_feve"], axes[2])
    fig.tight_layout()
    section.add_figure(fig, "cortex_map.png", out_dir, caption=(
        "Left: the simulated sheet's true domains, one hue per feature family. Middle: the recovered domains, each "
        "drawn in the colour of the true domain it shares most pixels with (one-to-one matching); the legend gives "
        "each recovered domain's label and its match, dark grey marks a recovered domain with no true partner, "
        "light grey the masked pixels. Right: the fit quality (held-out FEVE) of every modelled pixel."))
    predict = mapping.model_predictor(fitted)
    unit_labels = result.domain_map.ravel()[fitted.unit_pixels]
    rows, row_colours = {}, {}
    for d in sorted(result.domain_preferred):  # every recovered domain: its MEI, then its top preferred images
        units = torch.as_tensor(np.flatnonzero(unit_labels == d))
        image, _ = mapping.most_exciting_image(lambda x: predict(x)[:, units].mean(1), fitted.image_size, steps=100)
        partner = f"true {true_names[match[d]]}" if d in match else "no true partner"
        title = f"domain {d}: {result.labels.get(d, '?')} ({partner})"
        rows[title] = (image, bank.images[result.domain_preferred[d][:PREFERRED_SHOWN]])
        row_colours[title] = colours[d]
    section.add_figure(figures.plot_domain_images(rows, row_colours, per_row=PREFERRED_SHOWN),
                       "cortex_preferred.png", out_dir, caption=(
                           f"Every recovered domain: its most-exciting image (framed, first column; regularised "
                           f"gradient ascent on the model) and its top {PREFERRED_SHOWN} preferred images of "
                           f"the {len(bank)}-image bank (of the {TOP_K} used to label and "
                           "verify it). Row titles in the domain's map colour."))
    section.add_table(confusion_table(verification["family_confusion"]))
    section.add_table(Table(["domain", "label", "matched true domain", "d' (domain vs rest)", "prefers own images"],
                            [[r["domain"], result.labels.get(r["domain"], "?"),
                              true_names[match[r["domain"]]] if r["domain"] in match else "none",
                              round(r["d_prime"], 2), r["prefers_own_set"]] for r in verification["per_domain"]],
                            caption="In-silico verification of each recovered domain."))
    return [section]

