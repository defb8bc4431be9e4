"""Zoo: run a team of AI agents from the terminal, with plain files for state."""

__version__ = "0.1.0"
