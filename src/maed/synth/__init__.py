"""Synthetic training videos of the free Anny body model (``maed synth``).

Importing this package loads nothing heavy; the generator imports torch, anny and pyrender when it runs.

Modules, from the top down:

- ``generator``: the run (arguments, resume, workers, splits, databases, metadata):
  ``maed.synth.generator.generate(out, sequences=..., frames=..., seed=...)``
- ``sequence``: one sequence (people, camera, look, frames, annotations)
- ``motion`` and ``limits``: smooth random motion inside per-bone angle limits, walking gait
- ``bodies``: the body model of a run (Anny rigs or SMPL) and the shapes of each split
- ``appearance``: clothing-like part colours, skin tones, hair
- ``backgrounds``: procedural patterns and the photographs inside the scikit-image wheel
- ``render``: pyrender (people) plus a CPU floor with shadows and a backdrop
- ``preview``: contact sheets of frames with joints and boxes
"""
