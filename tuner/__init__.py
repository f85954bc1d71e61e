"""Optimizer tuning: search space, optimizer factory, training objective and local search."""

__version__ = "0.1.0"
