"""Moving MNIST generation, digit sources, video files (arrays and real videos) and PyTorch loaders."""

from matap.data.files import load_videos
from matap.data.loader import EpochShuffleSampler, GeneratedVideos, VideoDataset, make_loader, to_frames
from matap.data.moving_mnist import generate
from matap.data.sets import generated_split, load_split, training_stream, user_videos, validation_videos, video_split

__all__ = ["EpochShuffleSampler", "GeneratedVideos", "VideoDataset", "generate", "generated_split", "load_split",
           "load_videos", "make_loader", "to_frames", "training_stream", "user_videos", "validation_videos",
           "video_split"]
