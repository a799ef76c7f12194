import numpy as np
import pytest
import torch

from tunelab.cortex.simulate import CorticalSheet, SheetConfig


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def small_sheet() -> CorticalSheet:
    """A 24 x 24 sheet seeing 32 x 32 images: big enough for every mechanism, fast enough for unit tests."""
    return CorticalSheet(SheetConfig(height=24, width=24, image_size=32, rf_sigma=4.0, retinotopy_span=10.0,
                                     calibration_images=96, boundary_warp=2.0, seed=3))


@pytest.fixture(scope="session")
def small_bank():
    from tunelab.cortex.images import offline_bank

    return offline_bank(160, size=32, seed=11)
