"""The mr modality as a tomoconsensus plugin (:mod:`tomoconsensus.registry`): where its parts live."""

from tomoconsensus.plugin import Plugin

PLUGIN = Plugin(
    name="mr",
    presentation="tomoconsensus.mr.presentation:MRPresentation",
    prepare_parser="tomoconsensus.mr.cli:add_prepare_parser",
    refiner="tomoconsensus.mr.modality:MRModality",
    demo="tomoconsensus.mr.demo:DEMO",
    summary="multi-coil Cartesian MR: 4x masks with split outer lines, 1/P-weighted halves, SENSE as x_est",
)
