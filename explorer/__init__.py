"""Separation Explorer: see and hear what denoising autoencoders learn."""

__version__ = "0.1.0"
