"""Fitting an encoding model to a recording: trial-averaged, per-pixel standardised targets, Adam with a cosine
learning-rate decay over the epoch budget, early stopping on validation correlation (best weights restored),
evaluation on held-out test images with the noise-ceiling metrics."""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from tunelab.cortex import metrics
from tunelab.cortex.model import LOSS_FUNCTIONS, LOSSES, EncodingModel, ModelConfig, build_model
from tunelab.cortex.recording import Recording
from tunelab.errors import UserError


LR_SCHEDULES = ("cosine", "constant")


def lr_factor(step: int, total_steps: int, schedule: str, final_fraction: float) -> float:
    """Multiplier of the base learning rate at an optimiser step: 1 throughout for "constant"; for "cosine", half a
    cosine from 1 at step 0 to final_fraction at the last step of the epoch budget (and after it)."""
    if schedule == "constant":
        return 1.0
    progress = min(step / max(total_steps - 1, 1), 1.0)
    return final_fraction + (1 - final_fraction) * 0.5 * (1 + np.cos(np.pi * progress))


@dataclasses.dataclass
class FitConfig:
    loss: str = "mse"
    epochs: int = 30
    batch_size: int = 64
    lr: float = 5e-3
    lr_schedule: str = "cosine"  # "cosine": lr decays to final_lr_fraction * lr over the epoch budget; "constant"
    final_lr_fraction: float = 0.05
    patience: int = 4  # epochs without a better validation correlation before stopping
    readout_reg: float = 0.01  # weight of the readout's L1 regulariser
    weight_decay: float = 1e-5
    test_fraction: float = 0.1
    validation_fraction: float = 0.1
    seed: int = 0
    threads: int | None = None  # torch's thread count for the fit; None leaves the caller's setting alone

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise UserError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if self.epochs < 1 or self.batch_size < 2:
            raise UserError("epochs must be >= 1 and batch size >= 2")
        if self.lr_schedule not in LR_SCHEDULES:
            raise UserError(f"unknown lr schedule {self.lr_schedule!r}; choose one of {', '.join(LR_SCHEDULES)}")
        if not 0 < self.final_lr_fraction <= 1:
            raise UserError(f"final lr fraction must be in (0, 1], got {self.final_lr_fraction}")
        if self.threads is not None and self.threads < 1:
            raise UserError(f"threads must be >= 1, got {self.threads}")


# readout positions and scales have no natural zero: decay would pull a Gaussian's log-sigma towards sigma = 1 (the
# whole feature map; Adam moves a parameter with weak gradients at full lr) and positions towards the centre
UNDECAYED_NAMES = ("sigma", "mu", "position_net")


def is_decayed(name: str, parameter: torch.Tensor) -> bool:
    """Weight decay for weights that multiply features (convolutions, readout feature weights and masks) only; not
    for biases, batch-norm scales (1-d) or readout positions and scales, in any implementation's naming."""
    parts = name.lower().split(".")
    return parameter.ndim >= 2 and not any(key in part for part in parts for key in UNDECAYED_NAMES)


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    named = list(model.named_parameters())
    return [{"params": [p for n, p in named if is_decayed(n, p)], "weight_decay": weight_decay},
            {"params": [p for n, p in named if not is_decayed(n, p)], "weight_decay": 0.0}]


@dataclasses.dataclass
class FittedModel:
    """A trained model plus what it needs to speak in the recording's units and pixel indices."""

    model: EncodingModel
    model_config: ModelConfig
    image_size: int
    unit_pixels: np.ndarray  # sheet pixel index of each model unit (usable pixels only)
    sheet_shape: tuple[int, int]
    offset: np.ndarray  # prediction in response units = offset + scale * model output
    scale: np.ndarray
    history: list[dict] = dataclasses.field(default_factory=list)

    @property
    def n_units(self) -> int:
        return len(self.unit_pixels)

    def predict(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Responses [n_images, n_units] in the recording's units."""
        return self.offset + self.scale * predict_raw(self.model, images, batch_size)

    def save(self, folder: str | Path) -> None:
        from tunelab.io import atomic_write_bytes, atomic_write_json
        import io

        folder = Path(folder)
        buffer = io.BytesIO()
        torch.save(self.model.state_dict(), buffer)
        atomic_write_bytes(folder / "model.pt", buffer.getvalue())
        arrays = io.BytesIO()
        np.savez(arrays, unit_pixels=self.unit_pixels, offset=self.offset, scale=self.scale)
        atomic_write_bytes(folder / "model_arrays.npz", arrays.getvalue())
        atomic_write_json(folder / "model.json", {"model_config": dataclasses.asdict(self.model_config),
                                                  "image_size": self.image_size, "sheet_shape": self.sheet_shape,
                                                  "history": self.history})

    @classmethod
    def load(cls, folder: str | Path) -> "FittedModel":
        folder = Path(folder)
        if not (folder / "model.json").exists():
            raise UserError(f"no fitted model in {folder} (expected model.json, model.pt; run `tunelab cortex fit`)")
        meta = json.loads((folder / "model.json").read_text())
        with np.load(folder / "model_arrays.npz") as arrays:
            unit_pixels, offset, scale = arrays["unit_pixels"], arrays["offset"], arrays["scale"]
        config = ModelConfig(**meta["model_config"])
        sheet_shape = tuple(meta["sheet_shape"])
        model = build_model(config, meta["image_size"], len(unit_pixels), cortical_coords(unit_pixels, sheet_shape))
        model.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
        model.eval()
        return cls(model, config, meta["image_size"], unit_pixels, sheet_shape, offset, scale, meta["history"])


def cortical_coords(unit_pixels: np.ndarray, sheet_shape: tuple[int, int]) -> np.ndarray:
    rows, cols = np.divmod(np.asarray(unit_pixels), sheet_shape[1])
    return np.stack([rows, cols], 1).astype(np.float32)


@torch.no_grad()
def predict_raw(model: torch.nn.Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    model.eval()
    out = [model(torch.as_tensor(images[i: i + batch_size], dtype=torch.float32)).numpy()
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out).astype(np.float64)


def standardise_targets(mean_responses: np.ndarray, loss: str) -> tuple[np.ndarray, np.ndarray]:
    """(offset, scale) per unit so that targets = (y - offset) / scale: z-scores, or mean-scaled for Poisson."""
    if loss == "poisson":  # NaN (a pixel missing on all of an image's trials) is left out
        if np.nanmin(mean_responses) < 0:
            raise UserError(f"the poisson loss needs non-negative responses; the smallest is "
                            f"{np.nanmin(mean_responses):.3g} (use --loss mse or correlation)")
        return np.zeros(mean_responses.shape[1]), np.nanmean(mean_responses, 0) + 1e-8
    return np.nanmean(mean_responses, 0), np.nanstd(mean_responses, 0) + 1e-8


def fill_missing(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Missing targets (NaN) take the detached prediction, so they add no gradient to the MSE and Poisson losses
    (and almost none to the correlation loss): they are left out of the fit, not imputed."""
    missing = torch.isnan(target)
    return torch.where(missing, prediction.detach(), target) if missing.any() else target


def evaluate_observed(responses: np.ndarray, predictions: np.ndarray) -> dict[str, np.ndarray]:
    """metrics.evaluate per unit over the images where the unit is present on every repeat (units sharing a
    pattern of missing images are evaluated together); NaN for units with fewer than 2 such images."""
    missing = np.isnan(responses).any(axis=1)  # [image, unit]
    patterns, group = np.unique(missing.T, axis=0, return_inverse=True)
    out: dict[str, np.ndarray] = {}
    for g, pattern in enumerate(patterns):
        units, keep = np.flatnonzero(group.ravel() == g), ~pattern
        if keep.sum() < 2:
            continue
        for name, values in metrics.evaluate(responses[keep][:, :, units], predictions[keep][:, units]).items():
            out.setdefault(name, np.full(responses.shape[2], np.nan))[units] = values
    if not out:
        raise UserError("no unit is present on every repeat of at least 2 test images; the metrics are undefined")
    return out


def fit_model(recording: Recording, model_config: ModelConfig | None = None, fit_config: FitConfig | None = None,
              model: EncodingModel | None = None, progress: bool = True, on_epoch=None) -> tuple[FittedModel, dict]:
    """Train on the recording's train images; returns the fitted model and a report (test metrics, timing)."""
    model_config = model_config or ModelConfig()
    fit_config = fit_config or FitConfig()
    if fit_config.loss == "poisson" and model_config.output != "elu1":
        model_config = dataclasses.replace(model_config, output="elu1")
    if fit_config.threads is not None:  # only when asked: the thread count is the caller's process setting
        torch.set_num_threads(fit_config.threads)
    torch.manual_seed(fit_config.seed)
    unit_pixels = np.flatnonzero(recording.pixel_mask)
    split = recording.split(fit_config.test_fraction, fit_config.validation_fraction, fit_config.seed)
    averaged = recording.mean_responses()[:, unit_pixels]  # every trial of every image
    offset, scale = standardise_targets(averaged[split["train"]], fit_config.loss)
    targets = ((averaged - offset) / scale).astype(np.float32)
    images = recording.images.images
    if model is None:
        model = build_model(model_config, images.shape[-1], len(unit_pixels),
                            cortical_coords(unit_pixels, recording.sheet_shape), fit_config.seed)
    with torch.no_grad():  # start every unit at its mean response
        model.readout.bias.copy_(torch.as_tensor(np.nan_to_num(np.nanmean(targets[split["train"]], 0))))
    loss_function = LOSS_FUNCTIONS[fit_config.loss]
    optimiser = torch.optim.Adam(parameter_groups(model, fit_config.weight_decay), lr=fit_config.lr)
    train_images = torch.from_numpy(images[split["train"]])
    train_targets = torch.from_numpy(targets[split["train"]])
    rng = np.random.default_rng(fit_config.seed)
    # a constant lr left most fits still improving at the epoch budget; decaying it over the budget gave +0.015,
    # +0.037 and +0.036 median test FEVE on held-out simulations 10-12 (64 x 64, 2,000 images, 30 epochs), but
    # -0.05 at a 12-epoch budget (docs/cortex.md)
    batches_per_epoch = len(range(0, len(train_images) - fit_config.batch_size // 2, fit_config.batch_size))
    total_steps, step = fit_config.epochs * batches_per_epoch, 0
    base_lrs = [group["lr"] for group in optimiser.param_groups]
    best = (-np.inf, None, 0)
    history = []
    start = time.perf_counter()
    epochs = range(fit_config.epochs)
    if progress:
        from tunelab.progress import track

        epochs = track(epochs, f"fitting {model_config.readout} readout ({len(unit_pixels)} pixels)")
    for epoch in epochs:
        model.train()
        order = rng.permutation(len(train_images))
        losses = []
        for i in range(0, len(order) - fit_config.batch_size // 2, fit_config.batch_size):
            batch = order[i: i + fit_config.batch_size]
            prediction = model(train_images[batch])
            target = fill_missing(prediction, train_targets[batch])
            loss = loss_function(prediction, target) + fit_config.readout_reg * model.readout.regularizer()
            factor = lr_factor(step, total_steps, fit_config.lr_schedule, fit_config.final_lr_fraction)
            for group, base_lr in zip(optimiser.param_groups, base_lrs):
                group["lr"] = base_lr * factor
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            step += 1
            losses.append(loss.item())
        val_prediction = predict_raw(model, images[split["validation"]])
        val_corr = float(np.mean(metrics.columnwise_corr(val_prediction, np.where(
            np.isnan(targets[split["validation"]]), val_prediction, targets[split["validation"]]))))
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "validation_correlation": val_corr,
                        "lr": optimiser.param_groups[0]["lr"],
                        "seconds": time.perf_counter() - start})
        if on_epoch is not None:
            on_epoch(history[-1])
        if val_corr > best[0]:
            best = (val_corr, copy.deepcopy(model.state_dict()), epoch)
        elif epoch - best[2] >= fit_config.patience:
            break
    model.load_state_dict(best[1])
    model.eval()
    seconds = time.perf_counter() - start
    if fit_config.loss == "correlation":  # scale-free predictions: map them to response units on validation data
        raw = predict_raw(model, images[split["validation"]])
        observed = np.where(np.isnan(targets[split["validation"]]), raw, targets[split["validation"]])
        slope = metrics.columnwise_corr(raw, observed) * observed.std(0) / (raw.std(0) + 1e-8)
        intercept = observed.mean(0) - slope * raw.mean(0)
        offset, scale = offset + scale * intercept, scale * slope
    fitted = FittedModel(model, model_config, int(images.shape[-1]), unit_pixels, recording.sheet_shape,
                         np.asarray(offset, dtype=np.float64), np.asarray(scale, dtype=np.float64), history)
    test_responses = recording.repeated(split["test"])[:, :, unit_pixels].astype(np.float64)
    per_unit = evaluate_observed(test_responses, fitted.predict(images[split["test"]]))
    report = {"fit_seconds": seconds, "epochs_run": len(history), "best_epoch": best[2],
              "best_validation_correlation": best[0], "n_units": len(unit_pixels),
              "masked_pixels": int(recording.n_pixels - len(unit_pixels)), "trials": recording.n_trials,
              "images": {name: len(indices) for name, indices in split.items()},
              "test_repeats": int(test_responses.shape[1]),
              "test": metrics.summarise(per_unit), "per_unit": per_unit, "split": split}
    return fitted, report
