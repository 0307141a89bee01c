import numpy as np
import pytest
import torch
from pytorch_msssim import ssim as msssim_ssim
from skimage.metrics import structural_similarity

from matap import metrics
from matap.errors import MatapError


@pytest.fixture
def frames():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(3, 5, 1, 64, 64, generator=g)
    pred = (target + 0.3 * torch.randn(target.shape, generator=g)).clamp(0, 1)
    return pred, target


def test_ssim_is_per_frame(frames):
    pred, target = frames
    assert metrics.ssim(pred, target).shape == (3, 5)
    assert metrics.ssim(pred[:, :, 0], target[:, :, 0]).shape == (3, 5)


def test_ssim_matches_pytorch_msssim(frames):
    pred, target = frames
    ours = metrics.ssim(pred, target).flatten()
    theirs = msssim_ssim(pred.flatten(0, 1), target.flatten(0, 1), data_range=1.0, size_average=False)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_ssim_matches_scikit_image_gaussian_population(frames):
    pred, target = frames
    ours = metrics.ssim(pred, target).flatten().numpy()
    theirs = [
        structural_similarity(p[0].double().numpy(), t[0].double().numpy(), gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False, data_range=1.0)
        for p, t in zip(pred.flatten(0, 1), target.flatten(0, 1))
    ]
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_ssim_of_identical_frames_is_one(frames):
    _, target = frames
    torch.testing.assert_close(metrics.ssim(target, target), torch.ones(3, 5))


def test_mse_units():
    pred = torch.zeros(1, 1, 64, 64)
    target = torch.full((1, 1, 64, 64), 0.5)
    assert metrics.mse_per_pixel(pred, target).item() == pytest.approx(0.25)
    assert metrics.mse_per_frame(pred, target).item() == pytest.approx(0.25 * 4096)
    assert metrics.mae_per_frame(pred, target).item() == pytest.approx(0.5 * 4096)
    assert metrics.psnr(pred, target).item() == pytest.approx(10 * np.log10(4))


def test_bce_matches_logits_version():
    logits = torch.randn(2, 3, 1, 64, 64)
    target = torch.rand(2, 3, 1, 64, 64)
    torch.testing.assert_close(metrics.bce(torch.sigmoid(logits), target), metrics.bce_logits(logits, target),
                               atol=1e-4, rtol=1e-4)


def test_shape_mismatch_is_an_error():
    with pytest.raises(MatapError, match="shapes differ"):
        metrics.ssim(torch.rand(2, 64, 64), torch.rand(3, 64, 64))


def test_ssim_splits_into_empty_and_digit_windows():
    target = torch.zeros(2, 1, 64, 64)
    target[:, :, 30:33, 40:43] = 0.3                      # one faint 3x3 stroke per frame: it counts as a digit
    black = torch.zeros_like(target)
    # Valid 11x11 windows start at 0..53 on each axis; those starting at 20..32 (rows) and 30..42
    # (columns) hold a pixel of the stroke: 13 x 13 of the 54 x 54.
    empty_share = 1 - 13 * 13 / (54 * 54)
    torch.testing.assert_close(metrics.ssim_empty(black, target), torch.full((2,), empty_share))
    blurred = torch.nn.functional.avg_pool2d(target, 5, stride=1, padding=2)
    for pred in (black, blurred, target, torch.rand_like(target)):
        torch.testing.assert_close(metrics.ssim_empty(pred, target) + metrics.ssim_digits(pred, target),
                                   metrics.ssim(pred, target))
    # The blur spreads grey into windows that are empty in the truth: it loses there what it gains on the stroke.
    assert metrics.ssim_empty(blurred, target).max() < empty_share
    assert (metrics.ssim_digits(blurred, target) > metrics.ssim_digits(black, target)).all()
    torch.testing.assert_close(metrics.ssim_digits(target, target), torch.full((2,), 13 * 13 / (54 * 54)))
