__version__ = "0.1.0"

# BoRA adapters are saved with their own peft_type; this teaches PEFT to read them (now if PEFT is imported, else
# right after its import), without importing PEFT or torch here.
from tunelab.adapters.registry import install as _install_bora_loader  # noqa: E402

_install_bora_loader()
