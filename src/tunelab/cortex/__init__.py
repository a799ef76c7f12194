"""V4 natural-image mapping: simulated or recorded cortical responses -> encoding model -> preferred images,
most-exciting images and functional domains -> verification by new (in-silico) imaging.

Modules: `images` (image bank), `features` (image statistics), `simulate` (cortical sheet with known domains),
`recording` (responses [image, repeat, pixel] from NPZ/HDF5), `metrics` (FEVE, oracle...), `model` (CNN core +
factorised / Gaussian readouts), `fit` (training loop), `mapping` (preferred images, MEIs, domains), `verify`.
"""
