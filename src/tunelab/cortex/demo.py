"""The cortex section of `tunelab demo`: simulate a sheet with known domains, fit the encoding model, map
preferred images and domains, verify by in-silico imaging (small scale)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tunelab.report import Section, Table


FIRST_LOOK = {"side": 32, "n_images": 1200, "epochs": 12, "bank_size": 2000}
FULL = {"side": 48, "n_images": 2400, "epochs": 20, "bank_size": 4000}  # `tunelab demo --full`


def run(out_dir: Path, full: bool = False) -> list[Section]:
    sizes = FULL if full else FIRST_LOOK
    side, n_images, epochs, bank_size = (sizes[k] for k in ("side", "n_images", "epochs", "bank_size"))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from tunelab.cortex import mapping
    from tunelab.cortex.findings import confusion_table, families_phrase, map_findings
    from tunelab.cortex.fit import FitConfig, fit_model
    from tunelab.cortex.images import offline_bank
    from tunelab.cortex.model import ModelConfig
    from tunelab.cortex.pipeline import map_domains, simulate_recording, verify_in_silico
    from tunelab.cortex.simulate import SheetConfig

    out_dir = Path(out_dir)
    sheet, recording = simulate_recording(SheetConfig(height=side, width=side), n_images, repeats=2, seed=0)
    fitted, report = fit_model(recording, ModelConfig(), FitConfig(epochs=epochs))
    bank = offline_bank(bank_size, sheet.config.image_size, seed=100)
    result = map_domains(fitted, bank, k=25, progress=True)
    verification = verify_in_silico(sheet, result, bank)

    section = Section(
        title="V4 natural-image map (simulated cortex)",
        prose=(f"A simulated {side} x {side}-pixel cortical sheet with {len(sheet.config.domains)} contiguous domains "
               f"tuned to {families_phrase([f for f, _ in sheet.config.domains])} saw {n_images} photo patches "
               "(2 repeats; 8 % of them with a composited face). "
               "A CNN core with a Gaussian readout per pixel (positions predicted from cortical coordinates) was fit; "
               "it ranked a separate bank of photo patches for every pixel at once, pixels were clustered into "
               "spatially contiguous domains by their predicted response profiles, each domain was named from the "
               "image statistics of its preferred images, and each domain's preferred images were shown to the "
               "simulated sheet again (in-silico verification). "
               + map_findings(verification, result.labels, sheet.config.domain_names())),
    )
    test = report["test"]
    section.key_numbers = {
        "test median FEVE": round(test["median_feve"], 3),
        "recovered-domain ARI": round(verification["ari"], 3),
        "preferred-feature accuracy": round(verification["preferred_feature_accuracy"], 3),
        "domains preferring their own images": round(verification["fraction_preferring_own_set"], 3),
        "preference search (images/s)": round(result.images_per_second),
    }
    section.results = {"fit": {k: v for k, v in report.items() if k not in ("per_unit", "split")},
                       "map": result.summary(), "verification": verification}
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    truth = np.where(sheet.vessel_mask, -1, sheet.domain_map)
    mapping.plot_domain_map(truth, "true domains", dict(enumerate(sheet.config.domain_names())), ax=axes[0])
    mapping.plot_domain_map(result.domain_map, "recovered domains", {d: f"{d}:{n}" for d, n in result.labels.items()},
                            ax=axes[1])
    axes[2].hist(np.clip(report["per_unit"]["feve"], -0.5, 1), bins=40)
    axes[2].set_xlabel("test FEVE per pixel")
    fig.tight_layout()
    section.add_figure(fig, "cortex_map.png", out_dir, caption="True and recovered domain maps; FEVE per pixel.")
    rows = {f"{d}:{result.labels[d]}": bank.images[idx[:8]] for d, idx in result.domain_preferred.items()}
    section.add_figure(mapping.plot_image_grid(rows), "cortex_preferred.png", out_dir,
                       caption="Each recovered domain's top preferred images from the bank.")
    predict = mapping.model_predictor(fitted)
    unit_labels = result.domain_map.ravel()[fitted.unit_pixels]
    meis = {}
    for d in list(result.labels)[:3]:
        units = torch.as_tensor(np.flatnonzero(unit_labels == d))
        image, _ = mapping.most_exciting_image(lambda x: predict(x)[:, units].mean(1), fitted.image_size, steps=100)
        meis[f"{d}:{result.labels[d]}"] = image[None]
    section.add_figure(mapping.plot_image_grid(meis, per_row=1), "cortex_meis.png", out_dir,
                       caption="Most-exciting images of three domains (regularised gradient ascent).")
    section.add_table(confusion_table(verification["family_confusion"]))
    section.add_table(Table(["domain", "label", "d' (domain vs rest)", "prefers own images"],
                            [[r["domain"], result.labels.get(r["domain"], "?"), round(r["d_prime"], 2),
                              r["prefers_own_set"]] for r in verification["per_domain"]],
                            caption="In-silico verification of each recovered domain."))
    return [section]

