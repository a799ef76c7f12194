"""Recordings in the formats users have: trials with variable repeats, NWB files (widefield movie or ROI series),
the Sensorium/neuralpredictors file tree; grayscale and non-square stimuli; per-trial NaN; one-line errors."""

import json
from datetime import datetime, timezone

import numpy as np
import pytest
import torch

from tunelab.cli import main
from tunelab.cortex.images import ImageBank
from tunelab.cortex.recording import Recording, load_recording, save_recording, stimulus_bank
from tunelab.errors import UserError

SHEET = (6, 8)
FRAMES_PER_TRIAL, RATE = 4, 10.0


def _design(n_once=40, n_repeated=10, repeats=4, seed=0):
    """Trial order with most images shown once and a few `repeats` times, grayscale 24 x 32 stimuli, and responses
    [trial, pixel] driven by the image (so a fit has something to learn) plus noise."""
    rng = np.random.default_rng(seed)
    n_images = n_once + n_repeated
    stimuli = (rng.random((n_images, 24, 32)) * 255).astype(np.uint8)
    trial_image = rng.permutation(np.concatenate([np.arange(n_once), np.repeat(np.arange(n_once, n_images),
                                                                               repeats)]))
    weights = rng.normal(size=(24 * 32, SHEET[0] * SHEET[1])) / 30
    signal = (stimuli.reshape(n_images, -1) / 255.0) @ weights
    responses = signal[trial_image] + 0.3 * rng.normal(size=(len(trial_image), weights.shape[1]))
    return stimuli, trial_image, responses.astype(np.float32)


# ------------------------------------------------------------------------------------------ the trial representation

def test_variable_repeats_means_repeated_block_and_split():
    stimuli, trial_image, responses = _design()
    images, _ = stimulus_bank(stimuli)
    rec = Recording.from_trials(trial_image, responses, images, SHEET)
    counts = np.bincount(trial_image)
    expected = np.stack([responses[trial_image == i].mean(0) for i in range(len(images))])
    np.testing.assert_allclose(rec.mean_responses(), expected, rtol=1e-6, atol=1e-6)
    repeated_images = np.flatnonzero(counts >= 2)
    block = rec.repeated(repeated_images)
    assert block.shape == (len(repeated_images), 4, SHEET[0] * SHEET[1])
    for row, image in zip(block, repeated_images):  # the image's trials, in recording order
        np.testing.assert_array_equal(row, responses[trial_image == image])
    split = rec.split(test_fraction=0.1, validation_fraction=0.1)
    assert set(split["test"]) <= set(repeated_images) and len(split["test"]) == 5
    assert len(np.concatenate(list(split.values()))) == len(images) == len(np.unique(np.concatenate(
        list(split.values()))))
    with pytest.raises(UserError, match="no dense"):
        rec.responses
    with pytest.raises(UserError, match="shown >= 2 times"):
        rec.repeated([int(np.flatnonzero(counts == 1)[0])])


def test_dense_layout_is_the_equal_repeats_case():
    rng = np.random.default_rng(1)
    dense = rng.normal(size=(6, 3, 16)).astype(np.float32)
    images = ImageBank(rng.random((6, 3, 16, 16)).astype(np.float32), [str(i) for i in range(6)])
    rec = Recording(dense, images, (4, 4))
    np.testing.assert_array_equal(rec.trial_image, np.repeat(np.arange(6), 3))
    np.testing.assert_array_equal(rec.repeated(np.arange(6)), dense)
    np.testing.assert_allclose(rec.mean_responses(), dense.mean(1), rtol=1e-6)
    # the old split: a permutation of all images, test first
    order = np.random.default_rng(0).permutation(6)
    assert rec.split(0.2, 0.2)["test"].tolist() == sorted(order[:1].tolist())


def test_nan_is_per_trial_not_per_pixel(tmp_path):
    stimuli, trial_image, responses = _design()
    responses[3] = np.nan  # a missing trial
    image = int(np.flatnonzero(np.bincount(trial_image) == 4)[0])
    its_trials = np.flatnonzero(trial_image == image)
    responses[its_trials[:2], 2] = np.nan  # a pixel dropped on a few trials: kept, left out of those trials
    responses[:, 7] = np.nan  # a vessel: masked
    responses[: len(responses) // 2 + 1, 9] = np.nan  # missing on more than half the trials: masked
    images, _ = stimulus_bank(stimuli)
    rec = Recording.from_trials(trial_image, responses, images, SHEET)
    assert rec.n_trials == len(trial_image) - 1 and rec.missing_trials == 1
    assert rec.pixel_mask[2] and not rec.pixel_mask[7] and not rec.pixel_mask[9] and rec.pixel_mask.sum() == 46
    assert "2 of 48 pixels" in rec.masked_report() and "1 trials are missing" in rec.masked_report()
    expected = responses[[t for t in its_trials[2:] if t != 3], 2].astype(np.float64).mean()
    np.testing.assert_allclose(rec.mean_responses()[image, 2], expected, rtol=1e-12)
    save_recording(rec, tmp_path / "trials.npz")  # the trial layout round-trips
    back = load_recording(tmp_path / "trials.npz")
    np.testing.assert_array_equal(back.trial_image, rec.trial_image)
    np.testing.assert_array_equal(back.trial_responses, rec.trial_responses)


def test_fit_uses_every_trial_and_scores_repeated_images():
    from tunelab.cortex import metrics
    from tunelab.cortex.fit import FitConfig, evaluate_observed, fit_model
    from tunelab.cortex.model import ModelConfig

    stimuli, trial_image, responses = _design()
    once = np.flatnonzero(np.bincount(trial_image)[trial_image] == 1)
    responses[once[0], 4] = np.nan  # a train image's pixel missing: left out of the fit, never a test image
    rec = Recording.from_trials(trial_image, responses, stimulus_bank(stimuli)[0], SHEET)
    before = torch.get_num_threads()
    fitted, report = fit_model(rec, ModelConfig(), FitConfig(epochs=2, batch_size=8), progress=False)
    assert torch.get_num_threads() == before  # no --threads: the caller's setting stands
    assert report["trials"] == len(trial_image) and report["test_repeats"] == 4
    assert set(report["split"]["test"]) <= set(np.flatnonzero(np.bincount(trial_image) >= 2))
    test = rec.repeated(report["split"]["test"]).astype(np.float64)
    prediction = fitted.predict(rec.images.images[report["split"]["test"]])
    reference = metrics.evaluate(test, prediction)
    for name, values in report["per_unit"].items():
        np.testing.assert_allclose(values, reference[name], rtol=1e-5, atol=1e-8)
    # a unit missing on one test image's repeat is scored on the other images only
    test[0, 1, 4] = np.nan
    observed = evaluate_observed(test, prediction)
    np.testing.assert_allclose(observed["feve"][4], metrics.evaluate(test[1:, :, 4:5], prediction[1:, 4:5])["feve"][0])
    np.testing.assert_allclose(np.delete(observed["feve"], 4), np.delete(reference["feve"], 4), rtol=1e-6)
    fit_model(rec, ModelConfig(), FitConfig(epochs=1, batch_size=8, threads=1), progress=False)
    assert torch.get_num_threads() == 1
    torch.set_num_threads(before)


# ------------------------------------------------------------------------------------------ stimuli

def test_grayscale_and_non_square_stimuli_pad_or_crop():
    rng = np.random.default_rng(2)
    gray = (rng.random((3, 24, 32)) * 255).astype(np.uint8)
    padded, note = stimulus_bank(gray, "pad")
    assert padded.images.shape == (3, 3, 32, 32) and "grayscale" in note and "padded" in note
    np.testing.assert_allclose(padded.images[:, 0, 4:28, :], gray / 255.0, atol=1e-6)
    np.testing.assert_allclose(padded.images[:, 1, 0, 0], (gray / 255.0).mean(axis=(1, 2)), atol=1e-6)
    cropped, note = stimulus_bank(gray, "crop")  # centre 24 x 24, resized to the nearest multiple of 16 (32)
    assert cropped.images.shape == (3, 3, 32, 32) and "centre-cropped" in note and "resized to 32" in note
    floats = stimulus_bank(gray.astype(np.float32))[0]  # floats in [0, 255] read as 0-255
    np.testing.assert_allclose(floats.images, padded.images, atol=1e-6)
    channel_last = stimulus_bank(np.repeat(gray[..., None], 3, axis=3))[0]
    np.testing.assert_allclose(channel_last.images, padded.images, atol=1e-6)
    for bad, message in [(gray.astype(bool), "uint8 or float"), (gray.astype(np.complex64), "uint8 or float"),
                         (-gray.astype(np.float32) - 1, "must lie in"), (gray[:, :, :, None, None], "must be")]:
        with pytest.raises(UserError, match=message):
            stimulus_bank(bad)


# ------------------------------------------------------------------------------------------ NWB

def _nwb(path, stimuli, trial_image, responses, kind="movie", with_index_column=False, extra_series=False,
         tiers=None):
    """An NWB file: Images + IndexSeries stimulus, a trials table, and a widefield OnePhotonSeries movie (or an ROI
    response series) holding each trial's response on its frames and zeros between trials."""
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.base import ImageReferences, Images
    from pynwb.image import GrayscaleImage, IndexSeries
    from pynwb.ophys import DfOverF, ImageSegmentation, OnePhotonSeries, OpticalChannel

    nwb = NWBFile(session_description="fixture", identifier="fixture",
                  session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc))
    pictures = [GrayscaleImage(name=f"image{i:03d}", data=s) for i, s in enumerate(stimuli)]
    container = Images(name="stimuli", images=pictures, order_of_images=ImageReferences(name="order_of_images",
                                                                                          data=pictures))
    nwb.add_stimulus_template(container)
    period = 2 * FRAMES_PER_TRIAL / RATE  # each trial: a blank frame, the response's frames, blank frames
    starts = np.arange(len(trial_image)) * period + 0.5 / RATE  # windows hold frames 1..FRAMES_PER_TRIAL
    nwb.add_stimulus(IndexSeries(name="presentations", data=trial_image.astype(np.uint32), indexed_images=container,
                                 unit="N/A", timestamps=starts + 0.01))
    if with_index_column:
        nwb.add_trial_column("image_index", "image shown")
    if tiers is not None:
        nwb.add_trial_column("tier", "train, validation or test")
    for t, start in enumerate(starts):
        row = {"start_time": start, "stop_time": start + FRAMES_PER_TRIAL / RATE}
        row |= {"image_index": int(trial_image[t])} if with_index_column else {}
        row |= {"tier": tiers[t]} if tiers is not None else {}
        nwb.add_trial(**row)
    frames = np.zeros((len(trial_image) * 2 * FRAMES_PER_TRIAL, responses.shape[1]), np.float32)
    for t in range(len(trial_image)):
        frames[t * 2 * FRAMES_PER_TRIAL + 1: t * 2 * FRAMES_PER_TRIAL + 1 + FRAMES_PER_TRIAL] = responses[t]
    device = nwb.create_device(name="camera")
    plane = nwb.create_imaging_plane(name="plane", optical_channel=OpticalChannel(
        name="green", description="GCaMP", emission_lambda=510.0), description="V4", device=device,
        excitation_lambda=480.0, indicator="GCaMP6s", location="V4", imaging_rate=RATE)
    if kind == "movie" or extra_series:
        nwb.add_acquisition(OnePhotonSeries(name="widefield", data=frames.reshape(len(frames), *SHEET),
                                            imaging_plane=plane, rate=RATE, unit="dF/F"))
    if kind == "roi" or extra_series:
        ophys = nwb.create_processing_module(name="ophys", description="ROIs")
        segmentation = ImageSegmentation()
        ophys.add(segmentation)
        rois = segmentation.create_plane_segmentation(name="rois", description="cells", imaging_plane=plane)
        for _ in range(responses.shape[1]):
            rois.add_roi(image_mask=np.ones((2, 2)))
        region = rois.create_roi_table_region(region=list(range(responses.shape[1])), description="all")
        dff = DfOverF()
        ophys.add(dff)
        dff.create_roi_response_series(name="dff", data=frames, rois=region, unit="dF/F", rate=RATE)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


@pytest.mark.parametrize("kind, index_column", [("movie", False), ("roi", True)])
def test_nwb_reads_trials_images_and_windows(tmp_path, kind, index_column):
    stimuli, trial_image, responses = _design(n_once=12, n_repeated=3, repeats=3)
    path = _nwb(tmp_path / "session.nwb", stimuli, trial_image, responses, kind, index_column)
    notes = []
    rec = load_recording(path, notes=notes)
    np.testing.assert_array_equal(rec.trial_image, trial_image)
    np.testing.assert_allclose(rec.trial_responses, responses, rtol=1e-6, atol=1e-6)
    assert rec.sheet_shape == (SHEET if kind == "movie" else (1, responses.shape[1]))
    np.testing.assert_allclose(rec.images.images, stimulus_bank(stimuli)[0].images)
    assert any("grayscale" in n and "24 x 32 padded" in n for n in notes)


def test_nwb_tiers_several_series_and_errors(tmp_path):
    stimuli, trial_image, responses = _design(n_once=12, n_repeated=3, repeats=3)
    counts = np.bincount(trial_image)
    tiers = np.where(counts[trial_image] > 1, "test", np.where(trial_image % 4 == 0, "validation", "train"))
    path = _nwb(tmp_path / "two.nwb", stimuli, trial_image, responses, extra_series=True, tiers=tiers)
    with pytest.raises(UserError, match="several response series .*--series"):
        load_recording(path)
    rec = load_recording(path, series="dff")
    assert rec.sheet_shape == (1, responses.shape[1])
    assert rec.split()["test"].tolist() == np.flatnonzero(counts > 1).tolist()
    assert rec.split()["validation"].tolist() == [i for i in range(len(counts)) if counts[i] == 1 and i % 4 == 0]
    with pytest.raises(UserError, match="no response series 'nope'"):
        load_recording(path, series="nope")
    with pytest.raises(UserError, match="carries its own images"):
        load_recording(path, tmp_path, series="dff")
    bad = trial_image.copy()
    bad[0] = len(stimuli) + 3  # more images shown than the stimulus holds
    _nwb(tmp_path / "bad.nwb", stimuli, bad, responses, "movie", with_index_column=True)
    with pytest.raises(UserError, match="shows images up to 18 but its Images container holds 15"):
        load_recording(tmp_path / "bad.nwb")
    (tmp_path / "junk.nwb").write_bytes(b"not an nwb file")
    with pytest.raises(UserError, match="cannot read .* as NWB"):
        load_recording(tmp_path / "junk.nwb")


# ------------------------------------------------------------------------------------------ Sensorium

def _sensorium(folder, stimuli, trial_image, responses, tiers, with_ids=True):
    for sub in ("data/images", "data/responses", "meta/trials"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for t, image in enumerate(trial_image):
        np.save(folder / "data" / "images" / f"{t}.npy", stimuli[image][None].astype(np.float32))
        np.save(folder / "data" / "responses" / f"{t}.npy", responses[t])
    np.save(folder / "meta" / "trials" / "tiers.npy", np.asarray(tiers))
    if with_ids:
        np.save(folder / "meta" / "trials" / "frame_image_id.npy", 1000 + trial_image)
    return folder


def _sensorium_design():
    stimuli, trial_image, responses = _design()
    counts = np.bincount(trial_image)
    tiers = np.where(counts[trial_image] > 1, "test", np.where(trial_image % 5 == 0, "validation", "train"))
    return stimuli, trial_image, responses, tiers


@pytest.mark.parametrize("with_ids", [True, False])
def test_sensorium_tree_reads_tiers_and_repeats(tmp_path, with_ids):
    stimuli, trial_image, responses, tiers = _sensorium_design()
    tiers = tiers.copy()
    tiers[-1] = "final_test"  # a tier without public responses: skipped
    folder = _sensorium(tmp_path / "static", stimuli, trial_image, responses, tiers, with_ids)
    notes = []
    rec = load_recording(folder, notes=notes)
    assert rec.n_trials == len(trial_image) - 1 and any("final_test skipped" in n for n in notes)
    # image indices are renumbered; compare through the images themselves
    shown = stimulus_bank(stimuli)[0].images
    order = [int(np.flatnonzero((shown == image).all(axis=(1, 2, 3)))[0]) for image in rec.images.images]
    np.testing.assert_array_equal(np.asarray(order)[rec.trial_image], trial_image[:-1])
    np.testing.assert_allclose(rec.trial_responses, responses[:-1])
    split = rec.split()
    assert sorted(np.asarray(order)[split["test"]]) == np.flatnonzero(np.bincount(trial_image) > 1).tolist()
    assert rec.sheet_shape == (1, responses.shape[1])


@pytest.mark.parametrize("damage, message", [
    ("drop_response", "80 image files but 79 response files"),
    ("no_tiers", "no meta/trials/tiers.npy"),
    ("no_test", "has no test images"),
    ("test_once", "test images are shown once"),
    ("strings", "responses must be numbers"),
    ("mixed_tiers", "different tiers"),
    ("short_tiers", "tiers but there are"),
])
def test_sensorium_errors_are_one_line(tmp_path, damage, message, capsys):
    stimuli, trial_image, responses, tiers = _sensorium_design()
    if damage == "no_test":
        tiers = np.where(tiers == "test", "train", tiers)
    if damage == "test_once":
        counts = np.bincount(trial_image)
        tiers = np.where(counts[trial_image] > 1, "validation", np.where(trial_image % 7 == 0, "test", "train"))
    if damage == "mixed_tiers":
        tiers = tiers.copy()
        tiers[np.flatnonzero(tiers == "test")[0]] = "train"
    if damage == "short_tiers":
        tiers = tiers[:-2]
    folder = _sensorium(tmp_path / "static", stimuli, trial_image, responses, tiers)
    if damage == "drop_response":
        (folder / "data" / "responses" / "7.npy").unlink()
    if damage == "no_tiers":
        (folder / "meta" / "trials" / "tiers.npy").unlink()
    if damage == "strings":
        np.save(folder / "data" / "responses" / "0.npy", np.asarray(["a"] * responses.shape[1]))
    code = main(["cortex", "fit", "--data", str(folder), "--out", str(tmp_path / "m"), "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "m").exists()


def test_npz_trial_layout_errors(tmp_path, capsys):
    stimuli, trial_image, responses = _design()
    np.savez(tmp_path / "short.npz", responses=responses, trial_image=trial_image[:-1], images=stimuli)
    np.savez(tmp_path / "dtype.npz", responses=responses, trial_image=trial_image.astype(float), images=stimuli)
    np.savez(tmp_path / "once.npz", responses=responses[:40], trial_image=np.arange(40), images=stimuli)
    np.savez(tmp_path / "images.npz", responses=responses, trial_image=trial_image, images=stimuli.astype(bool))
    for name, message in [("short", "trial image indices"), ("dtype", "must be integers"),
                          ("once", "no image is shown more than once"), ("images", "uint8 or float")]:
        code = main(["cortex", "fit", "--data", str(tmp_path / f"{name}.npz"), "--out", str(tmp_path / "m")])
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (name, err)


# ------------------------------------------------------------------------------------------ end to end

def _fit_and_map(tmp_path, data, capsys, *extra):
    model, mapped = tmp_path / "model", tmp_path / "map"
    assert main(["cortex", "fit", "--data", str(data), "--out", str(model), "--epochs", "2", "--threads", "1",
                 "--json", *extra]) == 0
    captured = capsys.readouterr()
    fit = json.loads(captured.out)
    assert main(["cortex", "map", "--model", str(model), "--out", str(mapped), "--bank-size", "40", "--top-k", "3",
                 "--domains", "2", "--json"]) == 0
    mapping = json.loads(capsys.readouterr().out)
    return fit, mapping, captured.err, mapped


def test_nwb_fit_map_end_to_end(tmp_path, capsys):
    stimuli, trial_image, responses = _design()
    path = _nwb(tmp_path / "session.nwb", stimuli, trial_image, responses, "movie")
    fit, mapping, err, mapped = _fit_and_map(tmp_path, path, capsys)
    assert fit["trials"] == len(trial_image) and fit["test_repeats"] == 4 and fit["images"]["test"] == 5
    assert fit["n_units"] == SHEET[0] * SHEET[1] and np.isfinite(fit["test"]["median_feve"])
    assert "note: images: grayscale repeated into 3 channels; 24 x 32 padded" in err
    assert mapping["n_domains"] == 2
    with np.load(mapped / "map.npz") as saved:
        assert saved["domain_map"].shape == SHEET


def test_sensorium_fit_map_end_to_end(tmp_path, capsys):
    stimuli, trial_image, responses, tiers = _sensorium_design()
    folder = _sensorium(tmp_path / "static", stimuli, trial_image, responses, tiers)
    fit, mapping, _, mapped = _fit_and_map(tmp_path, folder, capsys, "--position", "free", "--square", "crop")
    once, fifth = np.bincount(trial_image) == 1, np.arange(len(stimuli)) % 5 == 0
    assert fit["images"] == {"test": int((~once).sum()), "validation": int((once & fifth).sum()),
                             "train": int((once & ~fifth).sum())}
    assert fit["trials"] == len(trial_image) and np.isfinite(fit["test"]["median_feve"])
    assert mapping["n_domains"] == 2
