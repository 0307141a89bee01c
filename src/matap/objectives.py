"""Training objectives: thin wrappers that turn a model and a batch into a loss.

``paper`` trains as the public reference does: the predictor's output at step
t, decoded, is compared with frame t (BCE) while the same output is pulled
towards z_{t+1} (Eq. 7) with the encoder's gradient flowing through the target.
``predict`` is a correct next-frame objective: the decoded prediction is
compared with frame t+1, an autoencoder term keeps decode(encode(x_t)) = x_t,
the latent target is detached, and an optional latent-rollout term trains
multi-step prediction. See docs/objectives.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.nn import functional as F

from matap.config import ObjectiveConfig
from matap.models import LatentVideoModel


@dataclass
class ObjectiveOutput:
    loss: torch.Tensor
    terms: dict[str, torch.Tensor]
    # name -> (predicted frames in [0, 1], target frames), both (B, T', 1, H, W); filled on request
    pairs: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)


def _bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, target)


class PaperObjective:
    """L = BCE(D(P(h_t)), x_t) + lambda * mean ||P(h_t) - z_{t+1}||^2   (Eq. 6-7, as the reference trains)."""

    name = "paper"
    headline = "recon"

    def __init__(self, cfg: ObjectiveConfig) -> None:
        self.latent_weight = cfg.latent_weight

    def __call__(self, model: LatentVideoModel, x: torch.Tensor, with_frames: bool = False,
                 progress: float = 1.0) -> ObjectiveOutput:
        out = model(x)                                                 # z, z_next: (B, T, d)
        logits = model.decode(out.z_next)                              # (B, T, 1, H, W)
        rec = _bce(logits, x)
        latent = F.mse_loss(out.z_next[:, :-1], out.z[:, 1:])          # target not detached, as in the reference
        result = ObjectiveOutput(rec + self.latent_weight * latent, {"rec": rec, "latent": latent})
        if with_frames:
            result.pairs["recon"] = (torch.sigmoid(logits), x)
        return result


class PredictObjective:
    """L = BCE(D(P(h_t)), x_{t+1}) + w_ae BCE(D(z_t), x_t) + lambda ||P(h_t) - sg(z_{t+1})||^2 / Var(sg(z))
    [+ w_roll BCE(D(rollout from C context frames), x_{C..T})]."""

    name = "predict"
    headline = "next"

    def __init__(self, cfg: ObjectiveConfig) -> None:
        self.latent_weight = cfg.latent_weight
        self.ae_weight = cfg.ae_weight
        self.rollout_weight = cfg.rollout_weight
        self.rollout_context = cfg.rollout_context
        self.rollout_ramp = cfg.rollout_ramp

    def rollout_horizon(self, seq_len: int, progress: float) -> int:
        """Frames rolled out after the context at training ``progress`` in [0, 1]: a curriculum that
        grows linearly from 1 to ``seq_len - rollout_context`` over the first ``rollout_ramp`` of training."""
        full = seq_len - self.rollout_context
        if self.rollout_ramp <= 0 or progress >= self.rollout_ramp:
            return full
        return max(1, min(full, 1 + int(progress / self.rollout_ramp * full)))

    def __call__(self, model: LatentVideoModel, x: torch.Tensor, with_frames: bool = False,
                 progress: float = 1.0) -> ObjectiveOutput:
        """``progress`` (share of training done, 1 for validation) sets the rollout curriculum."""
        B, T = x.shape[:2]
        out = model(x)
        latents = [out.z_next[:, :-1], out.z]                          # (B, T-1, d), (B, T, d)
        if self.rollout_weight > 0:
            C = self.rollout_context
            horizon = self.rollout_horizon(T, progress)
            latents.append(model.rollout_latents(out.z[:, :C], horizon))  # (B, horizon, d)
        # One decoder call for every latent keeps the convolutions in large batches.
        logits = model.decode(torch.cat(latents, dim=1)).split([z.shape[1] for z in latents], dim=1)
        nxt = _bce(logits[0], x[:, 1:])
        ae = _bce(logits[1], x)
        target = out.z[:, 1:].detach()
        # Relative to the spread of the latents: the encoder's scale is free, and a raw MSE
        # can grow with it until, under gradient clipping, it starves the frame terms.
        latent = F.mse_loss(out.z_next[:, :-1], target) / target.var().clamp_min(1e-6)
        terms = {"next": nxt, "ae": ae, "latent": latent}
        loss = nxt + self.ae_weight * ae + self.latent_weight * latent
        if self.rollout_weight > 0:
            terms["rollout"] = _bce(logits[2], x[:, self.rollout_context:self.rollout_context + horizon])
            loss = loss + self.rollout_weight * terms["rollout"]
        result = ObjectiveOutput(loss, terms)
        if with_frames:
            result.pairs["next"] = (torch.sigmoid(logits[0]), x[:, 1:])
            result.pairs["recon"] = (torch.sigmoid(logits[1]), x)
            if self.rollout_weight > 0:
                result.pairs["rollout"] = (torch.sigmoid(logits[2]), x[:, C:C + horizon])
        return result


OBJECTIVES = {"paper": PaperObjective, "predict": PredictObjective}


def build_objective(cfg: ObjectiveConfig) -> PaperObjective | PredictObjective:
    return OBJECTIVES[cfg.name](cfg)
