"""Moving MNIST generation, digit sources, video files and PyTorch loaders."""

from matap.data.files import load_videos
from matap.data.loader import VideoDataset, EpochShuffleSampler, make_loader
from matap.data.moving_mnist import generate
from matap.data.sets import generated_split, load_split

__all__ = ["EpochShuffleSampler", "VideoDataset", "generate", "generated_split", "load_split", "load_videos",
           "make_loader"]
