"""Task-based image quality (AAPM TG-233; Samei et al., Med Phys 46(11), 2019) for CT denoisers.

``tomoconsensus iq`` simulates an analytic phantom with a run's own geometry and dose, and measures,
for FBP, TV and every trained run: the noise power spectrum (:mod:`.nps`), the task transfer function
per insert contrast (:mod:`.ttf`), the NPWE detectability index (:mod:`.detectability`), and the
calibration of the per-pixel uncertainty map from the two networks' disagreement (:mod:`.uncertainty`).
:mod:`.phantom` holds the phantom and its exact line integrals, :mod:`.simulate` the noisy
realisations, :mod:`.measure` the orchestration and :mod:`.report` the table, JSON and plots.
docs/iq.md describes the definitions and what was measured.
"""
