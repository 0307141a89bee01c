"""Training objectives: a model and a batch to a loss.

``paper`` trains as the public reference does: the predictor's output at step
t, decoded, is compared with frame t (BCE) while the same output is pulled
towards z_{t+1} (Eq. 7) with the encoder's gradient flowing through the target.
``predict`` is a correct next-frame objective, a weighted sum of named terms
(:data:`matap.registry.TERMS`): the decoded prediction against frame t+1
(``next``), an autoencoder term (``ae``), the detached latent target
(``latent``) and an optional rollout term (``rollout``). A new term is one
function registered with ``@register_term(name)``, weighed by
``objective.<name>_weight``. See docs/objectives.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch.nn import functional as F

from matap import metrics
from matap.config import ObjectiveConfig
from matap.models import LatentVideoModel, TeacherForced
from matap.registry import OBJECTIVES, TERMS, register_term


@dataclass
class ObjectiveOutput:
    loss: torch.Tensor
    terms: dict[str, torch.Tensor]
    # name -> (predicted frames in [0, 1], target frames), both (B, T', 1, H, W); filled on request
    pairs: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)


def _bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, target)


@OBJECTIVES.register("paper")
class PaperObjective:
    """L = BCE(D(P(h_t)), x_t) + lambda * mean ||P(h_t) - z_{t+1}||^2   (Eq. 6-7, as the reference trains)."""

    scores = "the reference's: the decoded prediction of step t against frame t (and the latent against z_{t+1})"
    target_offset = 0      # the decoded prediction of step t is scored against frame t + target_offset
    frame_term = "rec"     # the term of the loss that scores it
    headline = "recon"     # the frame pair whose validation SSIM is val_ssim (val_ssim_<headline>)

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


@dataclass
class Pass:
    """One training pass of the ``predict`` objective, what its terms read: the model, the frames ``x``
    (B, T, 1, H, W), the teacher-forced pass ``out``, and per frame pair (``next``: predictions of frames
    1 ... T-1, ``recon``: the frames encoded and decoded, ``rollout``: the rolled-out frames) the logits and
    their target frames, all decoded in one decoder call."""

    model: LatentVideoModel
    x: torch.Tensor
    out: TeacherForced
    ssim_weight: float
    logits: dict[str, torch.Tensor] = field(default_factory=dict)
    targets: dict[str, torch.Tensor] = field(default_factory=dict)
    latents: dict[str, torch.Tensor] = field(default_factory=dict)

    def frame_loss(self, pair: str) -> torch.Tensor:
        """BCE of a frame pair, plus ``ssim_weight`` (1 - SSIM) where that weight is above 0: SSIM punishes
        the faint grey haze that BCE tolerates over the black background."""
        logits, target = self.logits[pair], self.targets[pair]
        loss = _bce(logits, target)
        if self.ssim_weight > 0:
            # In float32 (outside autocast): SSIM divides small local variances.
            with torch.autocast(target.device.type, enabled=False):
                loss = loss + self.ssim_weight * (1 - metrics.ssim(torch.sigmoid(logits.float()), target.float()).mean())
        return loss


@register_term("next")
def next_frame(p: Pass) -> torch.Tensor:
    """The decoded prediction of step t against frame t+1."""
    return p.frame_loss("next")


@register_term("ae")
def autoencoder(p: Pass) -> torch.Tensor:
    """Each frame encoded and decoded against itself: keeps decode(encode(x_t)) = x_t."""
    return p.frame_loss("recon")


@register_term("latent")
def latent(p: Pass) -> torch.Tensor:
    """||P(h_t) - sg(z_{t+1})||^2 / Var(sg(z)): relative to the spread of the latents, since the encoder's
    scale is free and a raw MSE can grow with it until, under gradient clipping, it starves the frame terms."""
    target = p.out.z.detach()
    return F.mse_loss(p.out.z_next[:, :-1], target[:, 1:]) / target[:, 1:].var().clamp_min(1e-6)


@register_term("rollout")
def rollout(p: Pass) -> torch.Tensor:
    """The frame loss of the latents rolled out after the context (``objective.rollout_context``)."""
    return p.frame_loss("rollout")


@OBJECTIVES.register("predict")
class PredictObjective:
    """L = sum over terms of w_term * term: ``next`` (weight 1) + w_ae ``ae`` + lambda ``latent``
    [+ w_roll ``rollout`` + any registered term with a weight above 0], where the rollout term scores
    z^_t (t = C+1 ... C+H) rolled out from C context frames (feeding back latents or, with
    ``model.rollout_feedback = "frame"``, the encodings of the decoded frames), its horizon H growing
    over the first ``rollout_ramp`` of training. ``ssim_weight = w > 0`` adds w (1 - SSIM) to each frame term.
    """

    scores = "next frame: the decoded prediction of step t against frame t+1, plus an autoencoder term"
    target_offset = 1
    frame_term = "next"
    headline = "next"

    def __init__(self, cfg: ObjectiveConfig) -> None:
        # Each term that counts, with its weight, in the order the loss sums them.
        named = {"next": 1.0, "ae": cfg.ae_weight, "latent": cfg.latent_weight}
        extra = {key[: -len("_weight")]: w for key, w in cfg.weights.items()}
        self.weights = {name: w for name, w in {**named, **extra}.items() if name in ("next", "ae", "latent") or w > 0}
        self.ssim_weight = cfg.ssim_weight
        self.rollout_context = cfg.rollout_context
        self.rollout_ramp = cfg.rollout_ramp

    def rollout_horizon(self, seq_len: int, progress: float) -> int:
        """Frames rolled out after the context at training ``progress`` in [0, 1]: a curriculum that
        grows linearly from 1 to ``seq_len - rollout_context`` over the first ``rollout_ramp`` of training."""
        full = seq_len - self.rollout_context
        if self.rollout_ramp <= 0 or progress >= self.rollout_ramp:
            return full
        return max(1, min(full, 1 + int(progress / self.rollout_ramp * full)))

    def run(self, model: LatentVideoModel, x: torch.Tensor, progress: float) -> Pass:
        """The pass the terms read: the teacher-forced pass, the rollout where its term counts, every
        frame pair decoded (latents a rollout already decoded are not decoded again)."""
        out = model(x)
        T, C = x.shape[1], self.rollout_context
        cond = model.condition(x[:, :C])                                        # None for the paper's decoder
        p = Pass(model, x, out, self.ssim_weight)
        p.latents = {"next": out.z_next[:, :-1], "recon": out.z}                  # (B, T-1, d), (B, T, d)
        p.targets = {"next": x[:, 1:], "recon": x}
        first = {"next": 1, "recon": 0, "rollout": C}   # the index of the frame each pair's first latent decodes
        if "rollout" in self.weights:
            horizon = self.rollout_horizon(T, progress)
            rolled, rolled_logits = model.rollout_steps(out.z[:, :C], horizon, cond)  # logits or None
            p.latents["rollout"], p.targets["rollout"] = rolled, x[:, C:C + horizon]
            if rolled_logits is not None:
                p.logits["rollout"] = rolled_logits
        # One decoder call for every latent keeps the convolutions in large batches.
        todo = [name for name in p.latents if name not in p.logits]
        latents = [p.latents[name] for name in todo]
        index = torch.cat([torch.arange(z.shape[1], device=x.device) + first[name] for name, z in zip(todo, latents)])
        decoded = model.decode(torch.cat(latents, dim=1), cond, index).split([z.shape[1] for z in latents], dim=1)
        p.logits = {**dict(zip(todo, decoded)), **p.logits}
        return p

    def __call__(self, model: LatentVideoModel, x: torch.Tensor, with_frames: bool = False,
                 progress: float = 1.0) -> ObjectiveOutput:
        """``progress`` (share of training done, 1 for validation) sets the rollout curriculum."""
        p = self.run(model, x, progress)
        terms = {name: TERMS.get(name)(p) for name in self.weights}
        loss: Any = sum(self.weights[name] * value for name, value in terms.items())
        result = ObjectiveOutput(loss, terms)
        if with_frames:
            result.pairs = {name: (torch.sigmoid(p.logits[name]), p.targets[name]) for name in p.latents}
        return result


def build_objective(cfg: ObjectiveConfig) -> PaperObjective | PredictObjective:
    """The objective registered as ``cfg.name``, with its options."""
    return OBJECTIVES.get(cfg.name)(cfg)
