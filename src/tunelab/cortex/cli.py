"""`tunelab cortex simulate|fit|map|verify`: thin wrappers over the cortex modules."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import typer

from tunelab import validate
from tunelab.errors import UserError

MIN_SHEET = 8  # smaller sheets cannot hold the domains and their borders

app = typer.Typer(no_args_is_help=True, help="V4 natural-image mapping: encoding models of cortical imaging, "
                                             "preferred images, functional domains, verification.")


def _emit(payload: dict, as_json: bool, lines: list[str]) -> None:
    from tunelab.io import to_jsonable

    if as_json:
        typer.echo(json.dumps(to_jsonable(payload), indent=2))
    else:
        for line in lines:
            typer.echo(line)


@app.command()
def simulate(
    out: Path = typer.Option(..., "--out", help="Folder for recording.npz and sheet.json."),
    n_images: int = typer.Option(2000, "--n-images", help="Images shown."),
    repeats: int = typer.Option(2, "--repeats", help="Repeats per image (>= 2 for noise ceilings)."),
    height: int = typer.Option(64, "--height"),
    width: int = typer.Option(64, "--width"),
    domains: str = typer.Option(None, "--domains", help="Domains as FAMILY[:PARAMETER] separated by commas, one "
                                "per domain (their number is the domain count), e.g. 'colour:0,colour:0.6,texture,"
                                "edges:0,curvature'; families: colour (parameter: hue 0-1), texture, edges "
                                "(parameter: orientation index), curvature, and any other the simulator knows. "
                                "Default: the simulator's default set."),
    noise_sd: float = typer.Option(None, "--noise-sd", help="Independent noise per pixel and trial (default 0.6)."),
    shared_noise_sd: float = typer.Option(None, "--shared-noise-sd", help="Trial-to-trial noise shared by the sheet "
                                          "(default 0.3)."),
    boundary_warp: float = typer.Option(None, "--boundary-warp", help="Wiggle of domain borders in cortical pixels "
                                        "(default 4; 0 gives straight Voronoi borders)."),
    vessels: int = typer.Option(None, "--vessels", help="Blood vessels masked as NaN (default 3)."),
    face_fraction: float = typer.Option(None, "--face-fraction", help="Share of the shown images holding a "
                                        "composited face, 0-1 (default 0.2)."),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable summary on stdout."),
) -> None:
    """Simulate a cortical sheet with known domains and record its responses to offline photo patches."""
    from tunelab.cortex.pipeline import simulate_recording
    from tunelab.cortex.recording import save_recording
    from tunelab.cortex.simulate import SheetConfig
    from tunelab.io import atomic_write_json, staged_dir

    if repeats < 2:
        raise UserError(f"--repeats must be >= 2 for a noise ceiling, got {repeats}")
    if n_images < 50:
        raise UserError(f"--n-images must be >= 50, got {n_images}")
    validate.at_least("--height", height, MIN_SHEET, " cortical pixels")
    validate.at_least("--width", width, MIN_SHEET, " cortical pixels")
    for flag, value in (("--noise-sd", noise_sd), ("--shared-noise-sd", shared_noise_sd),
                        ("--boundary-warp", boundary_warp)):
        validate.finite(flag, value)
        validate.at_least(flag, value, 0)
    validate.at_least("--vessels", vessels, 0)
    validate.finite("--face-fraction", face_fraction)
    if face_fraction is not None and not 0 <= face_fraction <= 1:
        raise UserError(f"--face-fraction must be in [0, 1], got {face_fraction}")
    options = {"domains": None if domains is None else parse_domains(domains), "noise_sd": noise_sd,
               "shared_noise_sd": shared_noise_sd, "boundary_warp": boundary_warp, "n_vessels": vessels}
    config = SheetConfig(height=height, width=width, seed=seed, **{k: v for k, v in options.items() if v is not None})
    validate.out_dir(out)
    faces = {} if face_fraction is None else {"face_fraction": face_fraction}
    sheet, recording = simulate_recording(config, n_images, repeats, seed, **faces)
    with staged_dir(out) as tmp:
        save_recording(recording, tmp / "recording.npz")
        atomic_write_json(tmp / "sheet.json", dataclasses.asdict(config))
    summary = {"recording": str(out / "recording.npz"), "images": n_images, "repeats": repeats,
               "pixels": config.n_pixels, "domains": config.domain_names(), "masked_pixels": int(sheet.vessel_mask.sum())}
    _emit(summary, as_json, [f"recorded {n_images} images x {repeats} repeats x {config.n_pixels} pixels "
                             f"({len(config.domains)} domains, {summary['masked_pixels']} vessel pixels) -> {out}"])


def parse_domains(text: str) -> tuple:
    """'colour:0,texture,edges:2' -> (("colour", 0.0), ("texture", None), ("edges", 2.0)); families are checked by
    SheetConfig."""
    domains = []
    for item in text.split(","):
        family, _, parameter = item.strip().partition(":")
        if not family:
            raise UserError(f"--domains: empty domain in {text!r}; give FAMILY[:PARAMETER] separated by commas")
        try:
            domains.append((family, float(parameter) if parameter else None))
        except ValueError:
            raise UserError(f"--domains: parameter of {item.strip()!r} is not a number") from None
    return tuple(domains)


@app.command()
def fit(
    data: Path = typer.Option(..., "--data", help="Recording: .npz/.h5 (responses [image, repeat, pixel], or "
                              "[trial, pixel] with trial_image), .nwb, or a Sensorium/neuralpredictors folder "
                              "(docs/cortex.md, data formats)."),
    out: Path = typer.Option(..., "--out", help="Folder for the fitted model and fit.json."),
    images: Path = typer.Option(None, "--images", help="Image folder (one file per image, sorted by name)."),
    square: str = typer.Option("pad", "--square", help="Non-square stimuli: pad (centred on their mean grey) or "
                               "crop (centre square)."),
    series: str = typer.Option(None, "--series", help="NWB: the response series to fit when the file has several."),
    threads: int = typer.Option(None, "--threads", help="Torch CPU threads for the fit (default: torch's own "
                                "setting)."),
    readout: str = typer.Option("gaussian", "--readout", help="gaussian or factorised."),
    position: str = typer.Option("cortical", "--position", help="Gaussian positions: cortical (smooth) or free."),
    loss: str = typer.Option("mse", "--loss", help="mse, poisson or correlation."),
    epochs: int = typer.Option(30, "--epochs"),
    lr_schedule: str = typer.Option("cosine", "--lr-schedule", help="cosine (decays to 5 % of the lr over --epochs) "
                                    "or constant."),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Fit a CNN encoding model to a recording; report FEVE and oracle metrics on held-out images."""
    import sys

    import numpy as np

    from tunelab.cortex.fit import LR_SCHEDULES, FitConfig, fit_model
    from tunelab.cortex.model import ModelConfig
    from tunelab.cortex.recording import load_recording
    from tunelab.io import atomic_write_json, staged_dir

    validate.at_least("--epochs", epochs, 1)
    validate.at_least("--threads", threads, 1)
    validate.one_of("--square", square, ("pad", "crop"))
    validate.one_of("--lr-schedule", lr_schedule, LR_SCHEDULES)
    model_config = ModelConfig(readout=readout, position=position)
    fit_config = FitConfig(loss=loss, epochs=epochs, lr_schedule=lr_schedule, seed=seed, threads=threads)
    if not data.is_dir():  # a folder is a Sensorium/neuralpredictors tree
        validate.in_file(data, "--data")
    if images is not None:
        validate.in_dir(images, "--images")
    validate.out_dir(out)
    notes: list[str] = []
    recording = load_recording(data, images, square=square, series=series, notes=notes)
    for note in notes + ([recording.masked_report()] if recording.masked_report() else []):
        print(f"note: {note}", file=sys.stderr)
    fitted, report = fit_model(recording, model_config, fit_config)
    summary = {k: v for k, v in report.items() if k not in ("per_unit", "split")}
    with staged_dir(out) as tmp:
        fitted.save(tmp)
        atomic_write_json(tmp / "fit.json", summary)
        np.savez(tmp / "per_unit.npz", unit_pixels=fitted.unit_pixels, **report["per_unit"])
    test = summary["test"]
    _emit(summary, as_json, [f"fitted {readout} readout on {summary['n_units']} pixels in {summary['fit_seconds']:.0f}s "
                             f"({summary['epochs_run']} epochs): test median FEVE {test['median_feve']:.3f}, "
                             f"correlation to average {test['median_correlation_to_average']:.3f} -> {out}"])


@app.command("map")
def map_command(
    model: Path = typer.Option(..., "--model", help="Folder written by `tunelab cortex fit`."),
    out: Path = typer.Option(..., "--out", help="Folder for map.npz, map.json, bank.npz and figures."),
    bank_size: int = typer.Option(4000, "--bank-size", help="Offline photo patches to rank (ignored with --bank)."),
    bank_folder: Path = typer.Option(None, "--bank", help="Rank this image folder instead of offline patches."),
    top_k: int = typer.Option(25, "--top-k"),
    domains: int = typer.Option(None, "--domains", help="Number of domains. Default: the count among 3-12 below the "
                                "largest relative jump in Ward merge height of the pixels' readout profiles, "
                                "skipping counts that leave a domain under 2% of the pixels."),
    meis: int = typer.Option(0, "--meis", help="Synthesise most-exciting images for this many domains."),
    seed: int = typer.Option(100, "--seed", help="Seed of the offline bank (use one the model was not fit on)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Preferred images for every pixel, functional domains and their labels (plus optional MEIs)."""
    import io

    import numpy as np
    import torch

    from tunelab.cortex import mapping
    from tunelab.cortex.fit import FittedModel
    from tunelab.cortex.images import load_image_folder, offline_bank
    from tunelab.cortex.pipeline import map_domains
    from tunelab.io import atomic_savefig, atomic_write_bytes, staged_dir

    validate.in_dir(model, "--model")
    validate.at_least("--bank-size", bank_size, 1)
    validate.at_least("--top-k", top_k, 1)
    validate.at_least("--domains", domains, 2)
    validate.at_least("--meis", meis, 0)
    if bank_folder is not None:
        validate.in_dir(bank_folder, "--bank")
    validate.out_dir(out)
    fitted = FittedModel.load(model)
    bank = load_image_folder(bank_folder, fitted.image_size) if bank_folder else offline_bank(
        bank_size, fitted.image_size, seed=seed)
    result = map_domains(fitted, bank, top_k, domains, min(1000, len(bank)), progress=True)
    summary = result.summary()
    with staged_dir(out) as tmp:
        bank_buffer = io.BytesIO()
        np.savez(bank_buffer, images=bank.to_uint8(), sources=np.asarray(bank.sources))
        atomic_write_bytes(tmp / "bank.npz", bank_buffer.getvalue())
        order = sorted(result.domain_preferred)  # what a verification session shows, set by set
        shown = np.concatenate([result.domain_preferred[d] for d in order])
        set_of_image = np.concatenate([np.full(len(result.domain_preferred[d]), s) for s, d in enumerate(order)])
        export = io.BytesIO()
        np.savez(export, images=bank.to_uint8()[shown], set_of_image=set_of_image, set_domains=np.asarray(order))
        atomic_write_bytes(tmp / "verification_images.npz", export.getvalue())
        names = {d: f"{d}:{label}" for d, label in result.labels.items()}
        atomic_savefig(mapping.plot_domain_map(result.domain_map, "recovered domains", names), tmp / "domains.png")
        rows = {names[d]: bank.images[idx[:8]] for d, idx in result.domain_preferred.items()}
        atomic_savefig(mapping.plot_image_grid(rows), tmp / "preferred_images.png")
        if meis:
            predict = mapping.model_predictor(fitted)
            unit_labels = result.domain_map.ravel()[fitted.unit_pixels]
            mei_rows = {}
            for d in list(result.labels)[:meis]:
                units = torch.as_tensor(np.flatnonzero(unit_labels == d))
                image, trace = mapping.most_exciting_image(lambda x: predict(x)[:, units].mean(1), fitted.image_size)
                mei_rows[names[d]] = image[None]
                summary.setdefault("mei_activation", {})[str(d)] = trace[-1]
            atomic_savefig(mapping.plot_image_grid(mei_rows, per_row=1), tmp / "meis.png")
        summary = result.save(tmp, extra_summary={k: v for k, v in summary.items() if k == "mei_activation"})
    _emit(summary, as_json, [f"{summary['n_domains']} domains ({', '.join(names.values())}); ranked {len(bank)} images "
                             f"at {result.images_per_second:.0f} images/s for {fitted.n_units} pixels -> {out}"])


@app.command()
def verify(
    map_dir: Path = typer.Option(..., "--map", help="Folder written by `tunelab cortex map`."),
    simulation: Path = typer.Option(None, "--simulation", help="Folder written by `tunelab cortex simulate`: image "
                                                               "the simulated sheet again (in silico)."),
    session: Path = typer.Option(None, "--session", help="A recorded verification session (.npz/.h5): responses "
                                 "[image, repeat, pixel] to the map's verification_images.npz, plus its set_of_image."),
    repeats: int = typer.Option(4, "--repeats", help="Repeats of the in-silico session."),
    out: Path = typer.Option(None, "--out", help="Where to write verify.json (default: the map folder)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show each domain's preferred images in new imaging and measure domain selectivity (and ARI on simulations)."""
    import numpy as np

    from tunelab.cortex import verify as verify_lib
    from tunelab.cortex.domain_map import DomainMap
    from tunelab.cortex.images import ImageBank
    from tunelab.cortex.pipeline import verify_in_silico
    from tunelab.cortex.simulate import CorticalSheet, SheetConfig
    from tunelab.io import atomic_write_json

    if (simulation is None) == (session is None):
        raise UserError("give exactly one of --simulation (in-silico imaging) or --session (a recorded session)")
    validate.at_least("--repeats", repeats, 1)
    validate.in_dir(map_dir, "--map")
    validate.out_dir(out)
    result = DomainMap.load(map_dir)
    domain_map = result.domain_map
    if not (map_dir / "bank.npz").exists():
        raise UserError(f"no bank.npz in {map_dir} (run `tunelab cortex map` first)")
    with np.load(map_dir / "bank.npz") as arrays:
        bank = ImageBank.from_uint8(arrays["images"], list(arrays["sources"]))
    if simulation is not None:
        if not (simulation / "sheet.json").exists():
            raise UserError(f"no sheet.json in {simulation} (run `tunelab cortex simulate` first)")
        sheet = CorticalSheet(SheetConfig(**json.loads((simulation / "sheet.json").read_text())))
        if sheet.domain_map.shape != domain_map.shape:
            raise UserError(f"the map is {domain_map.shape} but the simulated sheet is {sheet.domain_map.shape}")
        report = verify_in_silico(sheet, result, bank, repeats)
    else:
        responses, set_of_image = verify_lib.load_session(session, domain_map.size)
        per_set = verify_lib.set_responses(responses, set_of_image)
        report = verify_lib.domain_selectivity(per_set, domain_map, sorted(result.domain_preferred))
    atomic_write_json((out or map_dir) / "verify.json", report)
    lines = [f"domain selectivity: median d' {report['median_d_prime']:.2f}, "
             f"{report['fraction_preferring_own_set']:.0%} of domains prefer their own images"]
    if "ari" in report:
        lines.append(f"agreement with the true map: ARI {report['ari']:.3f}; preferred-feature accuracy "
                     f"{report['preferred_feature_accuracy']:.2f}")
    _emit(report, as_json, lines)
