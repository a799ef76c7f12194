"""The encoding model: a CNN core shared by all pixels plus one readout per cortical pixel.

Readouts (the field's two standard forms, as in neuralpredictors):
  factorised  y_n = sum_c w_nc sum_xy m_n(x, y) Phi_c(x, y) + b_n, masks normalised to unit L2 norm,
              regularised by |m_n|_1 |w_n|_1
  Gaussian    y_n = sum_c w_nc Phi_c(p_n) + b_n, p_n ~ N(mu_n, sigma_n^2 I) while training, p_n = mu_n at
              evaluation (bilinear grid_sample); mu_n free, or predicted from the pixel's cortical coordinates by a
              small network so that retinotopy stays smooth; regularised by |w_n|_1
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tunelab.errors import UserError

READOUTS = ("gaussian", "factorised")
LOSSES = ("mse", "poisson", "correlation")


@dataclasses.dataclass
class ModelConfig:
    hidden_channels: int = 16  # first layer
    channels: int = 32  # feature channels Phi_c read out by every pixel
    readout: str = "gaussian"
    position: str = "cortical"  # gaussian readout: "cortical" (mu from cortical coordinates) or "free"
    init_sigma: float = 0.2
    output: str = "identity"  # "elu1" keeps predictions positive (Poisson)

    def __post_init__(self):
        if self.readout not in READOUTS:
            raise UserError(f"unknown readout {self.readout!r}; choose one of {', '.join(READOUTS)}")
        if self.position not in ("cortical", "free"):
            raise UserError(f"unknown position mode {self.position!r}; choose cortical or free")
        if self.output not in ("identity", "elu1"):
            raise UserError(f"unknown output {self.output!r}; choose identity or elu1")


class Core(nn.Module):
    """Four conv layers, 64 x 64 RGB -> channels x 16 x 16 (strides 2, 2, then two dilated layers); receptive field
    41 pixels, enough to take in a whole curved contour or a face. The three-layer core used before (17 pixels) fit
    a held-out simulation at median FEVE 0.756 against 0.834 for this one (demo size, seed 10)."""

    def __init__(self, hidden_channels: int = 16, channels: int = 32):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(3, hidden_channels, 5, stride=2, padding=2, bias=False), nn.BatchNorm2d(hidden_channels), nn.ELU(),
            nn.Conv2d(hidden_channels, channels, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ELU(),
            nn.Conv2d(channels, channels, 3, padding=2, dilation=2, bias=False), nn.BatchNorm2d(channels), nn.ELU(),
            nn.Conv2d(channels, channels, 3, padding=2, dilation=2, bias=False), nn.BatchNorm2d(channels), nn.ELU(),
        )
        self.channels = channels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images - 0.5)

    def output_shape(self, image_size: int) -> tuple[int, int, int]:
        return (self.channels, image_size // 4, image_size // 4)


class GaussianReadout(nn.Module):
    def __init__(self, in_shape: tuple[int, int, int], n_units: int, coords: np.ndarray | None = None,
                 init_sigma: float = 0.2, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        channels = in_shape[0]
        self.features = nn.Parameter(torch.randn(n_units, channels, generator=generator) * 0.01)
        self.bias = nn.Parameter(torch.zeros(n_units))
        self.log_sigma = nn.Parameter(torch.full((n_units,), float(np.log(init_sigma))))
        if coords is None:
            self.mu_free = nn.Parameter(torch.rand(n_units, 2, generator=generator) * 0.2 - 0.1)
            self.register_buffer("coords", None)
            self.position_net = None
        else:  # positions as a smooth function of cortical coordinates
            coords = np.asarray(coords, dtype=np.float32)
            coords = (coords - coords.mean(0)) / (np.abs(coords - coords.mean(0)).max() + 1e-8)
            self.register_buffer("coords", torch.from_numpy(coords))
            self.position_net = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 2), nn.Tanh())

    @property
    def mu(self) -> torch.Tensor:
        """Read-out positions [n_units, 2] in grid_sample's (x, y) convention, within [-1, 1]."""
        if self.position_net is not None:
            return self.position_net(self.coords)
        return self.mu_free.clamp(-1, 1)

    def forward(self, feature_map: torch.Tensor, sample: bool | None = None) -> torch.Tensor:
        sample = self.training if sample is None else sample
        if not sample:  # fixed positions: one sparse weighted sum, ~20x faster than grid_sample + channel sum
            return bilinear_readout(feature_map, self.mu, self.features) + self.bias
        mu = self.mu
        noise = torch.randn(feature_map.shape[0], *mu.shape, device=mu.device)
        grid = (mu + noise * self.log_sigma.exp()[:, None]).clamp(-1, 1)
        sampled = F.grid_sample(feature_map, grid.unsqueeze(2), align_corners=True)  # [B, C, n, 1]
        # multiply-and-sum over channels: several times faster than the equivalent einsum on CPU
        return (sampled[..., 0] * self.features.T).sum(1) + self.bias

    def regularizer(self) -> torch.Tensor:
        return self.features.abs().sum(1).mean()


def bilinear_readout(feature_map: torch.Tensor, mu: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """y[b, n] = sum_c features[n, c] * Phi[b, c] bilinearly sampled at mu[n] (grid_sample's convention,
    align_corners=True, mu within [-1, 1]).

    Each unit touches 4 grid corners x C channels, so the readout is a sparse [n, C*H*W] matrix with 4C weights
    per row; embedding_bag applies it to the feature maps (columns of the table are images) without building the
    [B, C, n] tensor of sampled features. Differentiable in all three inputs."""
    batch, channels, height, width = feature_map.shape
    x = (mu[:, 0] + 1) / 2 * (width - 1)
    y = (mu[:, 1] + 1) / 2 * (height - 1)
    x0 = x.detach().floor().clamp(0, max(width - 2, 0))
    y0 = y.detach().floor().clamp(0, max(height - 2, 0))
    fx, fy = x - x0, y - y0
    x1 = (x0 + 1).clamp(max=width - 1)
    y1 = (y0 + 1).clamp(max=height - 1)
    corners = torch.stack([y0 * width + x0, y0 * width + x1, y1 * width + x0, y1 * width + x1], 1).long()  # [n, 4]
    corner_weights = torch.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], 1)  # [n, 4]
    channel_offsets = torch.arange(channels, device=feature_map.device) * (height * width)
    index = (corners[:, :, None] + channel_offsets).flatten(1)  # [n, 4C] into the flattened (c, y, x) axis
    weights = (corner_weights[:, :, None] * features[:, None, :]).flatten(1)  # [n, 4C]
    table = feature_map.reshape(batch, -1).T.contiguous()  # [C*H*W, B]
    return F.embedding_bag(index, table, per_sample_weights=weights, mode="sum").T


class FactorisedReadout(nn.Module):
    def __init__(self, in_shape: tuple[int, int, int], n_units: int, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        channels, height, width = in_shape
        self.spatial = nn.Parameter(torch.randn(n_units, height, width, generator=generator) * 0.01)
        self.features = nn.Parameter(torch.randn(n_units, channels, generator=generator) * 0.01)
        self.bias = nn.Parameter(torch.zeros(n_units))

    @property
    def masks(self) -> torch.Tensor:
        return self.spatial / (self.spatial.flatten(1).norm(dim=1)[:, None, None] + 1e-6)

    def forward(self, feature_map: torch.Tensor, sample: bool | None = None) -> torch.Tensor:
        pooled = torch.einsum("bchw,nhw->bcn", feature_map, self.masks)
        return (pooled * self.features.T).sum(1) + self.bias

    def regularizer(self) -> torch.Tensor:
        return (self.masks.flatten(1).abs().sum(1) * self.features.abs().sum(1)).mean()


class EncodingModel(nn.Module):
    """core + readout (+ output nonlinearity): images [B, 3, S, S] -> responses [B, n_units]."""

    def __init__(self, core: nn.Module, readout: nn.Module, output: str = "identity"):
        super().__init__()
        self.core = core
        self.readout = readout
        self.output = output

    def forward(self, images: torch.Tensor, sample: bool | None = None) -> torch.Tensor:
        y = self.readout(self.core(images), sample=sample)
        return F.elu(y) + 1 if self.output == "elu1" else y


def build_model(config: ModelConfig, image_size: int, n_units: int, coords: np.ndarray | None = None,
                seed: int = 0) -> EncodingModel:
    torch.manual_seed(seed)
    core = Core(config.hidden_channels, config.channels)
    in_shape = core.output_shape(image_size)
    if config.readout == "gaussian":
        readout = GaussianReadout(in_shape, n_units, coords if config.position == "cortical" else None,
                                  config.init_sigma, seed)
    else:
        readout = FactorisedReadout(in_shape, n_units, seed)
    return EncodingModel(core, readout, config.output)


def mse_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((prediction - target) ** 2).mean()


def poisson_loss(prediction: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Poisson negative log-likelihood without the constant log(y!) term."""
    return (prediction - target * torch.log(prediction + eps)).mean()


def correlation_loss(prediction: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """1 - Pearson correlation over the batch, averaged over units (scale-free)."""
    p = prediction - prediction.mean(0)
    t = target - target.mean(0)
    r = (p * t).sum(0) / (p.norm(dim=0) * t.norm(dim=0) + eps)
    return 1 - r.mean()


LOSS_FUNCTIONS = {"mse": mse_loss, "poisson": poisson_loss, "correlation": correlation_loss}
