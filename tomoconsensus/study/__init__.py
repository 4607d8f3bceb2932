"""The study runner: prepare -> train -> distil -> denoise -> evaluate -> report -> checks, for any modality
whose plugin has a demo (:mod:`tomoconsensus.registry`), with its protocol read from the plugin's TOML."""
