"""The pet modality as a tomoconsensus plugin (:mod:`tomoconsensus.registry`): where its parts live."""

from tomoconsensus.plugin import Plugin

PLUGIN = Plugin(
    name="pet",
    presentation="tomoconsensus.pet.presentation:PETPresentation",
    prepare_parser="tomoconsensus.pet.cli:add_prepare_parser",
    refiner=None,
    demo="tomoconsensus.pet.demo:DEMO",
    summary="2-D PET prompts or mMR list-mode: binomial thinning (or time frames), corrected FBP",
)
