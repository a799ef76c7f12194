"""PoFT (preference-oriented SFT, arXiv 2412.12865): loss, scoring against aligned models, trainer, tasks, studies."""
