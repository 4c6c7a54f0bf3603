"""Headless mesh rendering: overlays for the demo and ``maed render``, scenes for the synthetic generator."""
