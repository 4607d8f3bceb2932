"""The tomography layer that CT, PET and spectral CT share (docs/conventions.md, "The tomography layer").

Scan geometry (:mod:`.geometry`), the projectors and their adjoints (:mod:`.projector` ASTRA, :mod:`.joseph`,
:mod:`.curved`), flat and curved FBP (:mod:`.fbp`, :mod:`.curved`, compiled backprojection in
:mod:`.backproject`), total variation (:mod:`.tv`), the projection split with an FBP per half
(:mod:`.split`), the HU presentation (:mod:`.presentation`), one linear-operator interface
(:mod:`.linop`) and the choice of device back ends (:mod:`.backends`). It imports no modality.
Nothing is imported here, so that loading one light module (geometry, presentation) stays light.
"""
