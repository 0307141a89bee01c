"""Training on Lightning: the LightningModule, checkpoints and the run folder."""

from matap.training.checkpoint import load_checkpoint, load_model
from matap.training.run import resume, train

__all__ = ["load_checkpoint", "load_model", "resume", "train"]
