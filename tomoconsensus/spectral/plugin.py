"""The spectral modality as a tomoconsensus plugin (:mod:`tomoconsensus.registry`): where its parts live."""

from tomoconsensus.plugin import Plugin

PLUGIN = Plugin(
    name="spectral",
    presentation="tomoconsensus.spectral.presentation:SpectralPresentation",
    prepare_parser="tomoconsensus.spectral.cli:add_prepare_parser",
    refiner=None,
    demo="tomoconsensus.spectral.demo:DEMO",
    summary="photon-counting CT: energy bins as channels, odd/even views or thinning",
)
