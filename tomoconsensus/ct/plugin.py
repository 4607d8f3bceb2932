"""The ct modality as a tomoconsensus plugin (:mod:`tomoconsensus.registry`): where its parts live."""

from tomoconsensus.plugin import Plugin

PLUGIN = Plugin(
    name="ct",
    presentation="tomoconsensus.ct.presentation:CTPresentation",
    prepare_parser="tomoconsensus.ct.cli:add_prepare_parser",
    refiner=None,
    demo="tomoconsensus.ct.demo:DEMO",
    iq="tomoconsensus.ct.iq:run_iq",
    scanner_images="tomoconsensus.ct.scanner_images:denoise_images",
    summary="CT: sinograms, DICOM images or DICOM-CT-PD projections; odd/even views or count thinning, FBP per half",
)
