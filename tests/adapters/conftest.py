import sys
from pathlib import Path

import pytest

# test modules import the shared helpers by name (pytest runs with --import-mode=importlib)
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(params=["linear", "conv1d"])
def kind(request):
    return request.param


@pytest.fixture(params=["out_first", "in_first"])
def order(request):
    return request.param
