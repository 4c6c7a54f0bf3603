"""Synthetic training videos of the free Anny body model (``maed synth``)."""
