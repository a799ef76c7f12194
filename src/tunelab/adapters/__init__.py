"""Parameter-efficient fine-tuning: BoRA (bi-dimensional weight-decomposed LoRA) as a variant of PEFT's LoRA,
measured against PEFT's own LoRA and DoRA."""

from tunelab.adapters.bora import BidimLinearVariant, BidimLoraLinear
from tunelab.adapters.config import BidimLoraConfig
from tunelab.adapters.gains import IN_FIRST, ORDERS, OUT_FIRST

__all__ = ["BidimLinearVariant", "BidimLoraConfig", "BidimLoraLinear", "IN_FIRST", "ORDERS", "OUT_FIRST"]
