"""``metrics.ssim`` against scikit-image's Gaussian SSIM on the frames this project scores.

Moving MNIST frames are mostly black: a few hundred lit pixels out of 4,096,
and the models' outputs are often blank or a faint haze. There SSIM's means and
variances are tiny and its constants C1, C2 dominate, which dense noise does
not exercise. scikit-image with ``gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1`` computes what ``tf.image.ssim``
computes (11x11 window, valid windows only), in float64.
"""

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from matap import metrics
from matap.data.digits import load_digits
from matap.data.moving_mnist import generate

TOLERANCE = 1e-6


def _reference(pred: np.ndarray, target: np.ndarray) -> float:
    return structural_similarity(pred.astype(np.float64), target.astype(np.float64), gaussian_weights=True,
                                 sigma=1.5, use_sample_covariance=False, data_range=1.0)


@pytest.fixture(scope="module")
def digit_frames() -> np.ndarray:
    """(4, 10, 64, 64) float in [0, 1]: generated sequences of two digits, both motion models."""
    digits = load_digits("mnist", "val")
    reference = generate(digits, 0, "val", range(2), seq_len=10, motion="reference")
    classic = generate(digits, 0, "val", range(2), seq_len=10, motion="classic")
    return np.concatenate([reference, classic]).astype(np.float32) / 255


def _blur(frames: np.ndarray) -> np.ndarray:
    """A 5x5 box blur: a model's soft, spread-out rendering of the digits."""
    x = torch.from_numpy(frames).reshape(-1, 1, 64, 64)
    return torch.nn.functional.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=False).reshape(frames.shape).numpy()


def _pairs(frames: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (pred, target), each (N, 64, 64)."""
    now, later = frames[:, :-1].reshape(-1, 64, 64), frames[:, 1:].reshape(-1, 64, 64)
    blank = np.zeros_like(now)
    mean_frame = np.broadcast_to(frames.mean(axis=(0, 1)), now.shape)
    haze = np.full_like(now, 0.01)
    return {
        "next frame": (later, now),
        "blurred": (_blur(now), now),
        "mean frame": (np.ascontiguousarray(mean_frame), now),
        "blank prediction": (blank, now),
        "blank target": (now, blank),
        "blank vs blank": (blank, blank),
        "faint haze vs blank": (haze, blank),
        "digits under haze": (np.clip(now + 0.01, 0, 1), now),
    }


@pytest.mark.parametrize("case", ["next frame", "blurred", "mean frame", "blank prediction", "blank target",
                                  "blank vs blank", "faint haze vs blank", "digits under haze"])
def test_ssim_matches_scikit_image_on_sparse_and_blank_frames(digit_frames, case):
    pred, target = _pairs(digit_frames)[case]
    ours = metrics.ssim(torch.from_numpy(pred.copy()), torch.from_numpy(target.copy())).double().numpy()  # (N,)
    theirs = np.array([_reference(p, t) for p, t in zip(pred, target)])
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=TOLERANCE, err_msg=case)


def test_the_sparse_cases_span_the_range_of_ssim(digit_frames):
    """The cases above are not all near 1: they cover what the models score (about 0.1 to 1)."""
    pairs = _pairs(digit_frames)
    scores = {name: float(np.mean([_reference(p, t) for p, t in zip(*pairs[name])])) for name in pairs}
    assert scores["blank vs blank"] == pytest.approx(1.0)
    assert scores["mean frame"] < 0.3
    assert 0.5 < scores["blank prediction"] < 0.9
    assert scores["faint haze vs blank"] < 0.6  # a 0.01 haze halves the luminance term (C1 = 1e-4)
