"""The latent drift of a rollout (`matap evaluate --latent`): distances to the encodings of the true frames,
checked on a hand-made model and sequence, and through the CLI on a trained run."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from matap.cli import main
from matap.errors import MatapError
from matap.evaluation import format_latent_drift, latent_drift


class Counter(nn.Module):
    """Encodes a frame as (its pixel value, 0), so a video whose frame i is filled with i + offset has latents
    z_i = (i + offset, 0); its rollout predicts the zero latent."""

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        value = frames.flatten(2).mean(-1) * 255                      # (B, T)
        return torch.stack([value, torch.zeros_like(value)], dim=-1)  # (B, T, 2)

    def content(self, frames: torch.Tensor) -> None:
        return None

    def rollout_steps(self, z_context: torch.Tensor, horizon: int, content: None = None) -> tuple[torch.Tensor, None]:
        return z_context.new_zeros(z_context.shape[0], horizon, 2), None


def counting_videos(offsets: list[int], frames: int) -> np.ndarray:
    values = np.arange(frames)[None, :] + np.array(offsets)[:, None]             # (N, T)
    return np.broadcast_to(values[:, :, None, None], (len(offsets), frames, 64, 64)).astype(np.uint8)


def test_distances_on_a_hand_made_sequence():
    # Context frames 0, 1, 2; predicted steps k = 1, 2 are frames 3, 4. Sequences offset by 0 and 10.
    drift = latent_drift(Counter(), counting_videos([0, 10], 6), context=3, horizon=2, batch_size=1)
    latent = drift["latent"]
    assert drift["num_sequences"] == 2 and drift["horizon"] == 2
    assert latent["model"]["per_timestep"] == pytest.approx([(3 + 13) / 2, (4 + 14) / 2])  # the zero latent
    assert latent["truth_norm"]["per_timestep"] == pytest.approx([8, 9])
    assert latent["norm"]["per_timestep"] == pytest.approx([0, 0])
    assert latent["repeat"]["per_timestep"] == pytest.approx([1, 2])   # z_2 kept, the truth moves one a step
    assert latent["linear"]["per_timestep"] == pytest.approx([0, 0])   # steady motion: the line is exact
    assert latent["step"]["per_timestep"] == pytest.approx([1, 1])
    assert latent["model"]["mean"] == pytest.approx(8.5)
    table = format_latent_drift(drift)
    assert table.splitlines()[2].split() == ["1", "8.000", "1.000", "0.000", "1.000", "0.000", "8.000"]


def test_a_context_of_one_frame_or_too_short_videos_are_refused():
    with pytest.raises(MatapError, match="context >= 2"):
        latent_drift(Counter(), counting_videos([0], 6), context=1, horizon=2)
    with pytest.raises(MatapError, match="6 frames"):
        latent_drift(Counter(), counting_videos([0], 6), context=4, horizon=3)


def test_evaluate_latent_writes_the_drift_beside_the_frame_scores(smoke_run, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(smoke_run), "--latent", "--num", "4", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    steps = len(result["metrics"]["ssim"]["per_timestep"])
    for name in ("model", "repeat", "linear", "step", "norm", "truth_norm"):
        per_t = result["latent_drift"][name]["per_timestep"]
        assert len(per_t) == steps and np.isfinite(per_t).all() and min(per_t) >= 0
    assert "latent drift" in capsys.readouterr().out
    assert main(["evaluate", str(smoke_run), "--latent", "--protocol", "autoencode"]) == 2
    assert "--latent measures a rollout" in capsys.readouterr().err
