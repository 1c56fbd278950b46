"""`crl sweep`: expand a sweep spec (spec.py) and run it with the local (local.py) or SLURM (slurm.py) runner."""
from crl.sweep.cli import main

__all__ = ["main"]
