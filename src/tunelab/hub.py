"""Is a model/dataset hub reachable? Checked once, quickly, so offline users get a one-line error at once
instead of minutes of retries."""

from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlparse


OFFLINE_HINT = "set HF_HUB_OFFLINE=1 to use a copy already in the local Hugging Face cache"


def offline_mode() -> bool:
    """The user asked for cache-only loading (huggingface_hub then makes no HTTP calls at all)."""
    return any(os.environ.get(v, "0") not in ("", "0") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    if offline_mode():
        return False
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False
