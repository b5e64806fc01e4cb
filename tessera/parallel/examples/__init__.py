"""Runnable examples of parallel training (launch them with torchrun)."""
