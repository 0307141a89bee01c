"""Training on Lightning: the LightningModule and the run folder."""

from matap.checkpoint import load_checkpoint, load_model  # their home is matap.checkpoint; kept here for older callers
from matap.training.run import resume, train

__all__ = ["load_checkpoint", "load_model", "resume", "train"]
