"""Renderers: they read a Verdict and print it; they never judge."""
