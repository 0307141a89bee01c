"""The latent drift of a rollout (`matap evaluate --protocol latent`): distances to the encodings of the true
frames, checked on a hand-made model and sequence, and through the CLI on a trained run."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from matap.cli import main
from matap.errors import MatapError
from matap.evaluation import evaluate, format_latent_drift, score


class Counter(nn.Module):
    """Encodes a frame as (its pixel value, 0), so a video whose frame i is filled with v_i has latents
    z_i = (v_i, 0). Its rollout moves the last context latent by k at step k."""

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        value = frames.flatten(2).mean(-1) * 255                      # (B, T)
        return torch.stack([value, torch.zeros_like(value)], dim=-1)  # (B, T, 2)

    def condition(self, context: torch.Tensor) -> None:
        return None

    def rollout_steps(self, z_context: torch.Tensor, horizon: int, cond=None) -> tuple[torch.Tensor, None]:
        steps = torch.arange(1, horizon + 1, dtype=z_context.dtype)
        moved = z_context[:, -1:, :1] + steps.view(1, horizon, 1)     # (B, H, 1)
        return torch.cat([moved, torch.zeros_like(moved)], dim=-1), None


def accelerating_videos(offsets: list[int], frames: int) -> np.ndarray:
    """Frame i of video n filled with i^2 + offsets[n]: the latents move 1, 3, 5, 7, ... a step."""
    values = np.arange(frames)[None, :] ** 2 + np.array(offsets)[:, None]      # (N, T)
    return np.broadcast_to(values[:, :, None, None], (len(offsets), frames, 64, 64)).astype(np.uint8)


def test_distances_on_a_hand_made_sequence():
    # Context frames 0, 1, 2 (values 0, 1, 4); predicted steps k = 1, 2 are frames 3, 4 (values 9, 16).
    # Two videos, offset by 0 and 10; the distances do not depend on the offset, the norms do.
    drift = evaluate(Counter(), accelerating_videos([0, 10], 6), "latent", context=3, horizon=2, batch_size=1)
    latent = drift["metrics"]
    assert drift["num_sequences"] == 2 and drift["horizon"] == 2
    assert latent["model"]["per_timestep"] == pytest.approx([9 - 5, 16 - 6])       # rolled out: 4 + k
    assert latent["repeat"]["per_timestep"] == pytest.approx([9 - 4, 16 - 4])      # z_2 = 4 kept
    assert latent["linear"]["per_timestep"] == pytest.approx([9 - 7, 16 - 10])     # 4 + 3 k
    assert latent["step"]["per_timestep"] == pytest.approx([9 - 4, 16 - 9])
    assert latent["norm"]["per_timestep"] == pytest.approx([(5 + 15) / 2, (6 + 16) / 2])
    assert latent["truth_norm"]["per_timestep"] == pytest.approx([(9 + 19) / 2, (16 + 26) / 2])
    assert latent["model"]["mean"] == pytest.approx(7)
    table = format_latent_drift(drift)
    assert table.splitlines()[2].split() == ["1", "4.000", "5.000", "2.000", "5.000", "10.000", "14.000"]


def test_a_context_of_one_frame_or_too_short_videos_are_refused():
    with pytest.raises(MatapError, match="context >= 2"):
        evaluate(Counter(), accelerating_videos([0], 6), "latent", context=1, horizon=2)
    with pytest.raises(MatapError, match="6 frames"):
        evaluate(Counter(), accelerating_videos([0], 6), "latent", context=4, horizon=3)


def test_the_library_names_its_parameters_not_the_command_line_flags():
    videos = accelerating_videos([0], 6)
    calls = [lambda: evaluate(Counter(), videos, "latent", context=1, horizon=2),
             lambda: evaluate(Counter(), videos, "latent", context=4, horizon=3),
             lambda: score(videos, lambda x: (x, x), "predict", context=4, horizon=3),
             lambda: score(videos, lambda x: (x, x), "magic")]
    messages = []
    for call in calls:
        with pytest.raises(MatapError) as error:
            call()
        messages.append(str(error.value))
    assert "context (4) + horizon (3) = 7" in messages[1] and "context (4) + horizon (3) = 7" in messages[2]
    assert messages[3].startswith("protocol must be one of")
    assert not any("--" in message for message in messages), messages


def test_the_latent_protocol_through_the_cli(smoke_run, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(smoke_run), "--protocol", "latent", "--num", "4", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["protocol"] == "latent" and "baselines" not in result  # its own baselines are in its table
    for name in ("model", "repeat", "linear", "step", "norm", "truth_norm"):
        per_t = result["metrics"][name]["per_timestep"]
        assert len(per_t) == result["horizon"] and np.isfinite(per_t).all() and min(per_t) >= 0
    assert "latent drift" in capsys.readouterr().out
    assert main(["evaluate", str(smoke_run), "--protocol", "latent", "--num", "4", "--feedback", "frame",
                 "--json", str(out)]) == 0
    assert json.loads(out.read_text())["metrics"]["model"]["per_timestep"] != \
        result["metrics"]["model"]["per_timestep"]      # frame feedback rolls out other latents
    capsys.readouterr()
    assert main(["evaluate", str(smoke_run), "--protocol", "latent", "--context", "1"]) == 2
    assert "context >= 2" in capsys.readouterr().err
