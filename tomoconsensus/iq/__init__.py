"""Task-based image quality (AAPM TG-233; Samei et al., Med Phys 46(11), 2019), modality-independent.

The quantities: the noise power spectrum (:mod:`.nps`), the task transfer function from a circular
insert's edge (:mod:`.ttf`), the NPWE detectability index (:mod:`.detectability`), the per-pixel
uncertainty map from two half outputs and its calibration (:mod:`.uncertainty`); :mod:`.measure`
measures them on one method's images, :mod:`.apply` applies runs as ``denoise`` does and
:mod:`.report` writes the table, JSON and plots. Each modality's ``<m>/iq.py`` simulates its own
phantoms and feeds them here (the plugin's ``iq`` part). docs/iq.md describes the definitions and
what was measured.
"""
