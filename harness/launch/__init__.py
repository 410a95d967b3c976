"""How a unit's process is started: locally, under torchrun, or on SLURM."""
