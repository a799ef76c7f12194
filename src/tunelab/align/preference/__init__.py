"""DPO / EPA preference alignment: options and config, losses, data, trainer, reference log-probs, theory, studies."""
