"""Where the counting modality's parts live (:class:`tomoconsensus.plugin.Plugin`), named by the entry point."""

from tomoconsensus.plugin import Plugin

PLUGIN = Plugin(
    name="counting",
    presentation="toy_counting.presentation:CountingPresentation",
    prepare_parser="toy_counting.cli:add_prepare_parser",
    refiner=None,
    demo="toy_counting.demo:DEMO",
    summary="toy event counting: binomial thinning of Poisson counts, 2 N_half / t per half",
)
