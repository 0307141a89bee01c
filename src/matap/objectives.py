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

import itertools
from dataclasses import dataclass, field

import torch
from torch.nn import functional as F

from matap import metrics
from matap.config import ObjectiveConfig
from matap.models import LatentVideoModel
from matap.modules.keypoints import from_frame_units, positions
from matap.registry import OBJECTIVES


@dataclass
class ObjectiveOutput:
    loss: torch.Tensor
    terms: dict[str, torch.Tensor]
    # name -> (predicted frames in [0, 1], target frames), both (B, T', 1, H, W); filled on request
    pairs: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)


SEPARATION = 0.3     # width of the keypoint separation term, in the keypoint grid's units (9 pixels)


def separation(z: torch.Tensor, keypoints: int) -> torch.Tensor:
    """mean over frames and pairs i < j of exp(-|p_i - p_j|^2 / (2 SEPARATION^2)), the keypoint positions p of
    latents (..., d) in frame units: 1 where two keypoints coincide, near 0 where they are a digit's width apart."""
    where = positions(z.float(), keypoints).reshape(-1, keypoints, 2)
    apart = (where[:, :, None] - where[:, None]).pow(2).sum(-1)                       # (N, K, K) squared distances
    i, j = torch.triu_indices(keypoints, keypoints, offset=1, device=z.device)
    return torch.exp(-apart[:, i, j] / (2 * SEPARATION ** 2)).mean()


def _told_distances(z: torch.Tensor, centres: torch.Tensor, keypoints: int) -> torch.Tensor:
    """(P, B): for each pairing of the first D keypoints of latents (B, T, d) with the D digits (in the order
    of :func:`pairings`), the mean over frames and digits of the squared distance from keypoint to centre;
    ``centres`` (B, T, D, 2) in frame units (the generator's), compared in the keypoint grid's units."""
    D = centres.shape[2]
    where = positions(z.float(), keypoints)                                          # (B, T, K, 2)
    told = from_frame_units(centres.float())
    return torch.stack([(where[:, :, list(pairing)] - told).pow(2).sum(-1).mean(dim=(1, 2))
                        for pairing in pairings(D)])


def pairings(digits: int) -> list[tuple[int, ...]]:
    """Every way to give the digits 0 ... D-1 one keypoint each among keypoints 0 ... D-1."""
    return list(itertools.permutations(range(digits)))


def best_pairing(z: torch.Tensor, centres: torch.Tensor, keypoints: int) -> torch.Tensor:
    """(B,) index into :func:`pairings` of the pairing that fits each sequence best (no gradient)."""
    with torch.no_grad():
        return _told_distances(z, centres, keypoints).argmin(dim=0)


def position_error(z: torch.Tensor, centres: torch.Tensor, keypoints: int,
                   pairing: torch.Tensor | None = None) -> torch.Tensor:
    """The mean over sequences, frames and digits j of |p_{pi(j)} - c_j|^2 for latents (B, T, d) and digit
    centres c (B, T, D, 2) in frame units, the keypoints' positions p and the centres both taken in the
    keypoint grid's units, with pi one pairing of the first D keypoints and the D digits per sequence (the
    same in every frame of it): ``pairing`` (B,), an index into :func:`pairings`, or by default the one that
    fits each sequence best."""
    distances = _told_distances(z, centres, keypoints)                          # (P, B)
    if pairing is None:
        pairing = distances.detach().argmin(dim=0)
    return distances.gather(0, pairing[None]).mean()


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
        logits = model.decode(out.z_next, x)                           # (B, T, 1, H, W)
        rec = _bce(logits, x)
        latent = F.mse_loss(out.z_next[:, :-1], out.z[:, 1:])          # target not detached, as in the reference
        result = ObjectiveOutput(rec + self.latent_weight * latent, {"rec": rec, "latent": latent})
        if with_frames:
            result.pairs["recon"] = (torch.sigmoid(logits), x)
        return result


@OBJECTIVES.register("predict")
class PredictObjective:
    """L = BCE(D(P(h_t)), x_{t+1}) + w_ae BCE(D(z_t), x_t) + lambda ||P(h_t) - sg(z_{t+1})||^2 / Var(sg(z))
    [+ w_roll w_rb BCE(D(z^_t), x_t) + w_roll_latent ||z^_t - sg(z_t)||^2 / Var(sg(z))],
    where z^_t (t = C+1 ... C+H) is rolled out from C context frames (feeding back latents or,
    with ``model.rollout_feedback = "frame"``, the encodings of the decoded frames).
    ``ssim_weight = w > 0`` adds w (1 - SSIM) to each frame term: SSIM punishes the faint grey
    haze that BCE tolerates over the black background. ``rollout_bce_weight = w_rb`` scales BCE in
    the rollout's frame term: BCE of a rollout rewards the grey average of where a digit may be, SSIM
    a dark frame where the model is unsure, and w_rb = 0 keeps only the latter.

    ``latent_detach = False`` lets the latent terms' gradient reach the encoder through their target
    too, so that the encoder is shaped towards latents the cell can predict, step by step and over a
    rollout. The terms are then divided by mean_b Var_t(z) (gradient kept), how much each sequence's
    latents move over time, instead of the batch's Var(sg(z)): against the batch's spread the encoder
    wins by giving every frame of a sequence the same latent.

    ``curvature_weight = w_c > 0`` adds w_c mean_t ||z_{t+1} - 2 z_t + z_{t-1}||^2 / mean_b Var_t(z) over the
    encodings of the true frames, gradient kept in both: digits that move at a steady speed then trace
    straight lines in the latent space, which the cell can extend by repeating the last step. Dividing by
    the movement keeps the encoder from winning by keeping the latents still. ``curvature_positions``
    (with ``model.keypoints``) takes the term over the keypoints' positions only, the appearance left free.

    ``separation_weight = w_s > 0`` (with ``model.keypoints`` >= 2) adds w_s mean exp(-|p_i - p_j|^2 / (2 w^2))
    over each frame's pairs of encoded keypoint positions (w = :data:`SEPARATION`): keypoints that share
    one place between the digits are pushed apart, towards one digit each.

    ``position_weight = w_p > 0`` (a diagnostic, with the generator's digit ``centres`` (B, T, D, 2) given
    with each training batch) adds w_p :func:`position_error` of the encoded keypoints: the first D keypoints
    are told where the digits are, so that what a rollout makes of keypoints on the digits can be measured.
    ``rollout_position_weight`` adds the same term over the rolled-out latents and the centres of the frames
    they predict, with the pairing that fits the encodings: the cell is told where the digits go. Validation
    batches carry no centres, so ``val_loss`` leaves both terms out.

    ``decode_frames = k > 0`` decodes, in training, only k randomly chosen frames of each
    sequence per frame term: the decoder dominates the cost of a step, and neighbouring
    frames carry much the same gradient, so a step covers more sequences for the same time.
    """

    scores = "next frame: the decoded prediction of step t against frame t+1, plus an autoencoder term"
    target_offset = 1
    frame_term = "next"
    headline = "next"

    def __init__(self, cfg: ObjectiveConfig) -> None:
        self.latent_weight = cfg.latent_weight
        self.latent_detach = cfg.latent_detach
        self.ae_weight = cfg.ae_weight
        self.rollout_weight = cfg.rollout_weight
        self.rollout_latent_weight = cfg.rollout_latent_weight
        self.rollout_bce_weight = cfg.rollout_bce_weight
        self.rollout_context = cfg.rollout_context
        self.rollout_ramp = cfg.rollout_ramp
        self.decode_frames = cfg.decode_frames
        self.ssim_weight = cfg.ssim_weight
        self.curvature_weight = cfg.curvature_weight
        self.curvature_positions = cfg.curvature_positions
        self.separation_weight = cfg.separation_weight
        self.position_weight = cfg.position_weight
        self.rollout_position_weight = cfg.rollout_position_weight

    @property
    def rolls_out(self) -> bool:
        return self.rollout_weight > 0 or self.rollout_latent_weight > 0

    def rollout_horizon(self, seq_len: int, progress: float) -> int:
        """Frames rolled out after the context at training ``progress`` in [0, 1]: a curriculum that
        grows linearly from 1 to ``seq_len - rollout_context`` over the first ``rollout_ramp`` of training."""
        full = seq_len - self.rollout_context
        if self.rollout_ramp <= 0 or progress >= self.rollout_ramp:
            return full
        return max(1, min(full, 1 + int(progress / self.rollout_ramp * full)))

    def _subsample(self, z: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """k random timesteps per sequence of latents (B, T', d) and their frames (B, T', 1, H, W)."""
        B, T = z.shape[:2]
        k = self.decode_frames
        if k <= 0 or k >= T:
            return z, x
        picked = torch.rand(B, T, device=z.device).argsort(dim=1)[:, :k]          # (B, k)
        rows = torch.arange(B, device=z.device)[:, None]
        return z[rows, picked], x[rows, picked]

    def __call__(self, model: LatentVideoModel, x: torch.Tensor, with_frames: bool = False,
                 progress: float = 1.0, centres: torch.Tensor | None = None) -> ObjectiveOutput:
        """``progress`` (share of training done, 1 for validation) sets the rollout curriculum; ``centres``
        (B, T, D, 2), the digits' centres, feed the position term where it is on (training batches only)."""
        B, T = x.shape[:2]
        C = self.rollout_context
        out = model(x)
        # (latents, target frames) of each frame term
        pairs = {"next": (out.z_next[:, :-1], x[:, 1:]), "recon": (out.z, x)}  # (B, T-1, d), (B, T, d)
        decoded: dict[str, torch.Tensor] = {}                                # logits a rollout already made
        if self.rolls_out:
            horizon = self.rollout_horizon(T, progress)
            rolled, rolled_logits = model.rollout_steps(out.z[:, :C], horizon, model.content(x))  # logits or None
            pairs["rollout"] = (rolled, x[:, C:C + horizon])
            if rolled_logits is not None:
                decoded["rollout"] = rolled_logits
        if model.training:
            pairs = {name: pair if name in decoded else self._subsample(*pair) for name, pair in pairs.items()}
        # One decoder call for every latent keeps the convolutions in large batches.
        todo = [name for name in pairs if name not in decoded]
        latents = [pairs[name][0] for name in todo]
        logits = dict(zip(todo, model.decode(torch.cat(latents, dim=1), x).split([z.shape[1] for z in latents], dim=1)))
        logits.update(decoded)
        bce = {name: _bce(logits[name], frames) for name, (_, frames) in pairs.items()}
        if "rollout" in bce:
            bce["rollout"] = self.rollout_bce_weight * bce["rollout"]
        if self.ssim_weight > 0:
            # In float32 (outside autocast): SSIM divides small local variances.
            with torch.autocast(x.device.type, enabled=False):
                bce = {name: value + self.ssim_weight * (1 - metrics.ssim(torch.sigmoid(logits[name].float()),
                                                                           pairs[name][1].float()).mean())
                       for name, value in bce.items()}
        # Relative to the spread of the latents: the encoder's scale is free, and a raw MSE
        # can grow with it until, under gradient clipping, it starves the frame terms.
        if self.latent_detach:
            target = out.z.detach()
            spread = target[:, 1:].var().clamp_min(1e-6)
        else:
            # With the target attached, a spread over the whole batch lets the encoder win by making the
            # latents of a sequence all alike (measured: it does, within two epochs). Divided by how much
            # each sequence's latents move over time, gradient included, the term is the same whatever the
            # size of that movement, and falls only as the movement becomes predictable.
            target = out.z
            spread = target[:, 1:].var(dim=1).mean().clamp_min(1e-6)
        latent = F.mse_loss(out.z_next[:, :-1], target[:, 1:]) / spread
        terms = {"next": bce["next"], "ae": bce["recon"], "latent": latent}
        loss = bce["next"] + self.ae_weight * bce["recon"] + self.latent_weight * latent
        if self.rolls_out:
            terms["rollout"] = bce["rollout"]
            terms["rollout_latent"] = F.mse_loss(rolled, target[:, C:C + horizon]) / spread
            loss = loss + self.rollout_weight * terms["rollout"] + self.rollout_latent_weight * terms["rollout_latent"]
        if self.curvature_weight > 0:
            z = out.z[..., :2 * model.keypoints] if self.curvature_positions else out.z
            bend = z[:, 2:] - 2 * z[:, 1:-1] + z[:, :-2]
            terms["curvature"] = bend.pow(2).mean() / z.var(dim=1).mean().clamp_min(1e-6)
            loss = loss + self.curvature_weight * terms["curvature"]
        if self.separation_weight > 0:
            terms["separation"] = separation(out.z, model.keypoints)
            loss = loss + self.separation_weight * terms["separation"]
        told = self.position_weight > 0 or self.rollout_position_weight > 0
        if told and centres is None and model.training:
            raise ValueError("objective.position_weight and rollout_position_weight need the digits' centres "
                             "with every training batch (centres=...)")
        if told and centres is not None:
            pairing = best_pairing(out.z, centres, model.keypoints)    # the rollout keeps the encodings' pairing
            if self.position_weight > 0:
                terms["position"] = position_error(out.z, centres, model.keypoints, pairing)
                loss = loss + self.position_weight * terms["position"]
            if self.rollout_position_weight > 0:
                terms["rollout_position"] = position_error(rolled, centres[:, C:C + horizon], model.keypoints,
                                                           pairing)
                loss = loss + self.rollout_position_weight * terms["rollout_position"]
        result = ObjectiveOutput(loss, terms)
        if with_frames:
            result.pairs = {name: (torch.sigmoid(logits[name]), frames) for name, (_, frames) in pairs.items()}
        return result


def build_objective(cfg: ObjectiveConfig) -> PaperObjective | PredictObjective:
    """The objective registered as ``cfg.name``, with its options."""
    return OBJECTIVES.get(cfg.name)(cfg)
