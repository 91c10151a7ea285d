"""mindwell: supportive mental-health companions on small, local language models."""

__version__ = "0.1.0"
