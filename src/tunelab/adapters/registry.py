"""How a BoRA adapter is marked on disk, and the hook that teaches PEFT to read it. No heavy imports here.

A BoRA adapter's `adapter_config.json` carries `"peft_type": "TUNELAB_BIDIM_LORA"` instead of `"LORA"`. PEFT picks
the config class from that field (`PEFT_TYPE_TO_CONFIG_MAPPING[peft_type]`) in `PeftModel.from_pretrained`,
`PeftConfig.from_pretrained` (transformers' `load_adapter`), `get_peft_config` and hotswapping, so:

* where tunelab is imported, the field maps to `BidimLoraConfig` and every one of those routes rebuilds BoRA (in
  memory the config is a LoRA config, peft_type LORA, so the rest is PEFT's LoRA code);
* where it is not, PEFT stops with `KeyError: 'TUNELAB_BIDIM_LORA'` before building anything: a plain PEFT cannot
  load the file as LoRA and silently drop the two magnitudes.

`install()` runs on `import tunelab`. It registers at once if PEFT is already imported, otherwise it waits for PEFT's
import (a one-shot import hook on the top-level `peft` package), so `import tunelab` stays free of torch and PEFT and
the order of the imports does not matter.
"""

from __future__ import annotations

import importlib.abc
import sys
import warnings

PEFT_TYPE = "TUNELAB_BIDIM_LORA"
VARIANT_FIELD = "use_bidim_weight_decomposition"
ORDER_FIELD = "bidim_order"


def is_bidim_config_dict(saved: dict) -> bool:
    """Whether a saved adapter config describes a BoRA adapter (the marker, or a file from before the marker)."""
    return saved.get("peft_type") == PEFT_TYPE or bool(saved.get(VARIANT_FIELD, False))


def register_with_peft() -> None:
    """Map the marker to `BidimLoraConfig` in PEFT's config registry (idempotent; imports PEFT and torch)."""
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

    from tunelab.adapters.config import BidimLoraConfig

    PEFT_TYPE_TO_CONFIG_MAPPING[PEFT_TYPE] = BidimLoraConfig


def _register_quietly() -> None:
    try:
        register_with_peft()
    except Exception as err:  # never break `import peft`; BoRA files then fail to load (KeyError), never load wrong
        warnings.warn(f"tunelab could not register BoRA with PEFT, BoRA adapters will not load: {err}", stacklevel=2)


class _RegisteringLoader(importlib.abc.Loader):
    """PEFT's own loader, followed by the registration once the package has executed."""

    def __init__(self, loader, finder: _AfterPeftImport) -> None:
        self._loader = loader
        self._finder = finder

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        self._finder.remove()
        _register_quietly()

    def __getattr__(self, name: str):  # resource readers, is_package, get_source, ...
        return getattr(self._loader, name)


class _AfterPeftImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the loader the other finders return for `peft`."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "peft":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _RegisteringLoader(spec.loader, self)
                return spec
        return None

    def remove(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)


def install() -> None:
    """Register BoRA with PEFT now if PEFT is imported, else right after PEFT's import."""
    if "peft" in sys.modules:
        _register_quietly()
    elif not any(isinstance(finder, _AfterPeftImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterPeftImport())
