"""DPO / EPA preference alignment (the target home of the preference stack; new code lands here first)."""
