"""Stand-ins for the tests, the benchmarks and ``maed bench``: files in the real formats without the
licence-gated data. Not training data (that is ``maed synth``).

- ``maed.testing.smpl``: a random, well-formed SMPL model directory (official pickle layout, chumpy and
  scipy.sparse objects included), and Python 2 pickles.
- ``maed.testing.datasets``: databases and frames in the real on-disk format (stick figures).
"""
