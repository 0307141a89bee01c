"""The latent video model: encode every frame, unroll a cell over the latents,
predict the next latent, decode; and roll out autoregressively in latent space."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from matap.modules import BroadcastDecoder, Cell, LatentPredictor, SpatialDecoder, SpatialEncoder
from matap.modules.keypoints import KeypointDecoder, KeypointEncoder, positions


class TeacherForced(NamedTuple):
    z: torch.Tensor      # (B, T, d) encoded frames z_t
    z_next: torch.Tensor  # (B, T, d) predictions P(h_t) of z_{t+1}


FEEDBACKS = ("latent", "frame")
DECODERS = ("paper", "broadcast")


def as_frames(videos: torch.Tensor) -> torch.Tensor:
    """Frames as the model computes on them, float (B, T, 1, H, W) in [0, 1], from videos as users hold them:
    uint8 (0..255, scaled by 1/255 as matap.data.to_frames does) or floats in [0, 1], with the channel axis or
    without it, (B, T, H, W). Float frames with the channel axis are returned as they are."""
    if videos.dim() == 4:
        videos = videos.unsqueeze(2)
    return videos.to(torch.float32).div_(255.0) if videos.dtype == torch.uint8 else videos


class LatentVideoModel(nn.Module):
    """Encoder A.1 + a recurrent cell + predictor + decoder A.2.

    Frames are (B, T, 1, 64, 64) floats in [0, 1]; uint8 frames (0..255) and frames without the
    channel axis, (B, T, 64, 64), are taken too (:func:`as_frames`). Decoded frames come back as
    logits of shape (B, T, 1, 64, 64) (``torch.sigmoid`` gives the frame).

    ``feedback`` says what a rollout feeds back into the cell: ``"latent"`` (the paper) feeds the
    predicted latent itself; ``"frame"`` decodes it and feeds the encoding of the decoded frame,
    which keeps every input to the cell an encoding of a frame, as in training.

    ``content_path=True`` (beyond the paper) feeds the decoder, beside each latent, the encoder's
    feature maps of the first frame of the sequence (of the context, in a rollout): the digits'
    appearance then need not pass through the d numbers. ``decode`` then needs the frames.

    ``residual=True`` (beyond the paper, no parameters) makes the predictor's output the change of
    the latent: z^_{t+1} = z_t + P(h_t), where z_t is the cell's input at step t (in a rollout, the
    fed-back latent), so that a model that predicts no change repeats the last frame.

    ``velocity=True`` (beyond the paper, no parameters) adds the predictor's output to the straight-line
    extension of the cell's last two inputs: z^_{t+1} = 2 z_t - z_{t-1} + P(h_t) (z_{t-1} = z_t at the
    first step), so that a model that predicts no correction keeps the latent moving as it last moved.
    ``velocity_gain = g`` scales that last step: z^_{t+1} = z_t + g (z_t - z_{t-1}) + P(h_t); g < 1 damps it:
    an error in the step is carried forward scaled by g, and an error in a latent settles at 1 / (1 - g)
    times itself instead of growing step after step.

    ``predictor_skip=True`` (beyond the paper; 4 d^2 more parameters) gives the predictor the cell's last two
    inputs beside its output, P([h_t; z_t; z_{t-1}]), so that it can map the latents it extends directly
    instead of through the cell's normalised state.

    ``decoder="broadcast"`` (beyond the paper) renders frames with :class:`matap.modules.BroadcastDecoder`
    (the latent tiled over a 16x16 grid beside each cell's coordinates) instead of the paper's fully
    connected head; it has no content path.

    ``keypoints=K`` (beyond the paper; 0 is the paper's latent) makes the latent K keypoints, each its
    (x, y) position and d / K - 2 numbers of appearance (:mod:`matap.modules.keypoints`): the encoder
    and decoder are replaced; no content path, and the ``decoder`` option does not apply. With ``velocity``
    the straight line extends the positions only; the appearance numbers are kept, z^ = z + P(h) there.
    ``track=True`` (with keypoints) finds each frame's keypoints near the previous frame's
    (:meth:`matap.modules.keypoints.KeypointEncoder.track`); with frame feedback, near the predicted ones.
    ``fine_keypoints=True`` (with keypoints) finds the keypoints on a 32x32 grid instead of 16x16.
    ``sprites=True`` (with keypoints) draws each keypoint as a patch of features centred on it
    (:meth:`matap.modules.keypoints.KeypointDecoder.placed`) instead of a round bump.
    """

    def __init__(self, cell: Cell, latent_dim: int = 64, encoder_dropout: float = 0.2,
                 predictor_dropout: float = 0.1, feedback: str = "latent", content_path: bool = False,
                 residual: bool = False, velocity: bool = False, velocity_gain: float = 1.0,
                 predictor_skip: bool = False, decoder: str = "paper",
                 keypoints: int = 0, track: bool = False, sprites: bool = False,
                 fine_keypoints: bool = False) -> None:
        super().__init__()
        if feedback not in FEEDBACKS:
            raise ValueError(f"feedback must be one of {FEEDBACKS}; got {feedback!r}")
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}; got {decoder!r}")
        if decoder == "broadcast" and content_path:
            raise ValueError("the broadcast decoder has no content path: use decoder='paper' with content_path")
        if (track or sprites or fine_keypoints) and not keypoints:
            raise ValueError("track, sprites and fine_keypoints follow keypoints: they need keypoints > 0")
        if keypoints and (content_path or decoder != "paper"):
            raise ValueError("a keypoint latent has its own encoder and decoder: no content path, decoder='paper'")
        self.latent_dim = latent_dim
        self.feedback = feedback
        self.keypoints = keypoints
        self.track = track
        self.encoder = KeypointEncoder(latent_dim, keypoints, fine_keypoints) if keypoints else SpatialEncoder(latent_dim, encoder_dropout)
        self.cell = cell
        self.predictor_skip = predictor_skip
        self.predictor = LatentPredictor(latent_dim, predictor_dropout, 3 * latent_dim if predictor_skip else None)
        self.content_path = content_path
        self.residual = residual
        self.velocity = velocity
        self.velocity_gain = velocity_gain
        if keypoints:
            self.decoder = KeypointDecoder(latent_dim, keypoints, sprites=sprites)
        elif decoder == "broadcast":
            self.decoder = BroadcastDecoder(latent_dim)
        else:
            self.decoder = SpatialDecoder(latent_dim, content_path)

    def compile_parts(self) -> None:
        """``torch.compile`` the encoder, cell, predictor and decoder in place (``nn.Module.compile``): each is
        compiled at its first call; parameters, state_dict keys and checkpoints stay as they are."""
        for part in (self.encoder, self.cell, self.predictor, self.decoder):
            part.compile()

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, 1, H, W) -> (B, T, d); frames as :func:`as_frames` takes them."""
        frames = as_frames(frames)
        B, T = frames.shape[:2]
        if self.track:
            return self.encoder.track(frames)
        return self.encoder(frames.flatten(0, 1)).view(B, T, -1)

    def content(self, frames: torch.Tensor | None) -> list[torch.Tensor] | None:
        """What the content path carries for frames (B, T, 1, H, W): the encoder's feature maps of
        their first frame, (B, C, h, w) at 8x8, 16x16 and 32x32; None without a content path."""
        if not self.content_path:
            return None
        if frames is None:
            raise ValueError("a model with a content path decodes with the frames: decode(z, frames)")
        return self.encoder.pyramid(as_frames(frames)[:, 0])[::-1]

    def decode(self, z: torch.Tensor, frames: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, d) -> (B, T, 1, H, W) logits. ``frames`` (B, T', 1, H, W): the sequence whose
        first frame feeds the content path (needed only with one)."""
        B, T = z.shape[:2]
        content = self.content(frames)
        if content is not None:
            content = [maps.repeat_interleave(T, dim=0) for maps in content]   # (B * T, C, h, w)
        logits = self.decoder(z.flatten(0, 1), content)
        return logits.view(B, T, *logits.shape[1:])

    def unroll(self, z: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """Run the cell over (B, T, d) inputs; return outputs (B, T, d) and the last state."""
        if state is None:
            state = self.cell.initial_state(z.shape[0], z.device, z.dtype)
        return self.cell.unroll(z, state)

    def predict(self, h: torch.Tensor, z: torch.Tensor, z_before: torch.Tensor | None = None) -> torch.Tensor:
        """The predicted next latents from cell outputs ``h`` and the cell's inputs ``z`` at the same steps
        (same shape, (..., d)): P(h), z + P(h) with ``residual``, or z + g (z - z_before) + P(h) with ``velocity``,
        where ``z_before`` holds the inputs one step earlier (None: no earlier step, no movement); with
        ``predictor_skip``, P reads [h; z; z_before]."""
        if self.predictor_skip:
            h = torch.cat([h, z, z if z_before is None else z_before], dim=-1)      # (..., 3d)
        change = self.predictor(h)
        if self.velocity:
            if z_before is None:
                return change + z
            step = self.velocity_gain * (z - z_before)
            if self.keypoints:      # the line moves the positions; appearance is kept, not extended
                places = 2 * self.keypoints
                step = torch.cat([step[..., :places], torch.zeros_like(step[..., places:])], dim=-1)
            return change + z + step
        return z + change if self.residual else change

    def predict_sequence(self, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """:meth:`predict` at every step of (B, T, d) cell outputs ``h`` and inputs ``z``."""
        earlier = self.velocity or self.predictor_skip
        return self.predict(h, z, torch.cat([z[:, :1], z[:, :-1]], dim=1) if earlier else None)

    def forward(self, frames: torch.Tensor) -> TeacherForced:
        """Teacher-forced pass: z_t = E(x_t), z^_{t+1} = P(cell(z_<=t)); frames (B, T, 1, H, W), or as
        :func:`as_frames` takes them. Decode ``z_next`` for frames: ``torch.sigmoid(model.decode(out.z_next))``."""
        z = self.encode(frames)
        h, _ = self.unroll(z)
        return TeacherForced(z, self.predict_sequence(h, z))

    def rollout_latents(self, z_context: torch.Tensor, horizon: int) -> torch.Tensor:
        """Given (B, C, d) context latents, predict (B, horizon, d) future latents,
        feeding each prediction back into the cell (see ``feedback``)."""
        return self.rollout_steps(z_context, horizon)[0]

    def rollout_steps(self, z_context: torch.Tensor, horizon: int, content: list[torch.Tensor] | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, horizon, d) predicted latents and, with frame feedback, the (B, horizon, 1, H, W)
        logits decoded on the way (None with latent feedback, which decodes nothing).
        ``content``: ``self.content(context frames)``, needed with a content path and frame feedback."""
        h, state = self.unroll(z_context)
        before = z_context[:, -2] if z_context.shape[1] > 1 else None
        z_next = self.predict(h[:, -1], z_context[:, -1], before)      # (B, d)
        last = z_context[:, -1]
        latents, logits = [z_next], []
        for step in range(horizon):
            if self.feedback == "frame":
                logits.append(self.decoder(z_next, content))   # (B, 1, H, W)
            if step == horizon - 1:
                break
            if self.feedback == "latent":
                fed = z_next
            elif self.track:    # the decoded frame's keypoints, found near the predicted ones
                fed = self.encoder(torch.sigmoid(logits[-1]), positions(z_next.detach(), self.keypoints))
            else:
                fed = self.encoder(torch.sigmoid(logits[-1]))
            h_t, state = self.cell(fed, state)
            z_next = self.predict(h_t, fed, last)
            last = fed
            latents.append(z_next)
        return torch.stack(latents, dim=1), (torch.stack(logits, dim=1) if logits else None)

    def rollout(self, context: torch.Tensor, horizon: int) -> torch.Tensor:
        """(B, C, 1, H, W) context frames (or as :func:`as_frames` takes them) -> (B, horizon, 1, H, W)
        predicted frames, floats in [0, 1]."""
        context = as_frames(context)
        latents, logits = self.rollout_steps(self.encode(context), horizon, self.content(context))
        return torch.sigmoid(self.decode(latents, context) if logits is None else logits)
