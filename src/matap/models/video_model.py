"""The latent video model: encode every frame, unroll a cell over the latents,
predict the next latent, decode; and roll out autoregressively in latent space."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, NamedTuple

import torch
from torch import nn

from matap.errors import MatapError


class TeacherForced(NamedTuple):
    z: torch.Tensor      # (B, T, d) encoded frames z_t
    z_next: torch.Tensor  # (B, T, d) predictions P(h_t) of z_{t+1}


def as_frames(videos: torch.Tensor) -> torch.Tensor:
    """Frames as the model computes on them, float (B, T, 1, H, W) in [0, 1], from videos as users hold them:
    uint8 (0..255, scaled by 1/255 as matap.data.to_frames does) or floats in [0, 1], with the channel axis or
    without it, (B, T, H, W). Float frames with the channel axis are returned as they are."""
    if videos.dim() == 4:
        videos = videos.unsqueeze(2)
    return videos.to(torch.float32).div_(255.0) if videos.dtype == torch.uint8 else videos


class LatentFeedback:
    """The paper's rollout: the predicted latent itself is the cell's next input; nothing is decoded."""

    def decoded(self, model: LatentVideoModel, z: torch.Tensor, cond: Any, at: int) -> torch.Tensor | None:
        return None

    def fed(self, model: LatentVideoModel, z: torch.Tensor, logits: torch.Tensor | None) -> torch.Tensor:
        return z


class FrameFeedback:
    """Each predicted latent is decoded, and the encoding of the decoded frame is the cell's next input,
    so that every input to the cell is an encoding of a frame, as in training."""

    def decoded(self, model: LatentVideoModel, z: torch.Tensor, cond: Any, at: int) -> torch.Tensor | None:
        return model.decode(z.unsqueeze(1), cond, at).squeeze(1)

    def fed(self, model: LatentVideoModel, z: torch.Tensor, logits: torch.Tensor | None) -> torch.Tensor:
        return model.encoder(torch.sigmoid(logits))


@contextlib.contextmanager
def running_statistics(module: nn.Module) -> Iterator[None]:
    """Within the block, the BatchNorm layers of ``module`` normalise with their running statistics and do
    not update them, as in evaluation; every other layer (dropout, say) keeps its mode."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    for norm in norms:
        norm.eval()
    try:
        yield
    finally:
        for norm in norms:
            norm.train()


class FrameFeedbackRunningStats(FrameFeedback):
    """Frame feedback whose encoder and decoder normalise inside the rollout with the BatchNorm running
    statistics of the teacher-forced frames, in training as in evaluation: the rollout's batches of one frame
    per sequence neither normalise themselves nor move the running statistics. Outside training the same as
    ``"frame"``."""

    def decoded(self, model: LatentVideoModel, z: torch.Tensor, cond: Any, at: int) -> torch.Tensor | None:
        with running_statistics(model.decoder):
            return model.decode(z.unsqueeze(1), cond, at).squeeze(1)

    def fed(self, model: LatentVideoModel, z: torch.Tensor, logits: torch.Tensor | None) -> torch.Tensor:
        with running_statistics(model.encoder):
            return model.encoder(torch.sigmoid(logits))


FEEDBACKS = {"latent": LatentFeedback, "frame": FrameFeedback, "frame_running_stats": FrameFeedbackRunningStats}


class LatentVideoModel(nn.Module):
    """An encoder, a recurrent cell, a predictor and a decoder, each a registered part
    (:mod:`matap.registry`): the paper's are encoder A.1, MA-TAP or the GRU, P_psi and decoder A.2.

    Frames are (B, T, 1, 64, 64) floats in [0, 1]; uint8 frames (0..255) and frames without the
    channel axis, (B, T, 64, 64), are taken too (:func:`as_frames`). Decoded frames come back as
    logits of shape (B, T, 1, 64, 64) (``torch.sigmoid`` gives the frame).

    The encoder maps (N, 1, H, W) frames to (N, d), the decoder (N, d) latents to (N, 1, H, W) logits,
    the predictor is called as ``predictor(h, z, z_before)`` (:mod:`matap.modules.predictor`).
    ``feedback`` says what a rollout feeds back into the cell: ``"latent"`` (the paper), ``"frame"`` or
    ``"frame_running_stats"`` (:data:`FEEDBACKS`).

    A *conditioned* decoder (``decoder.conditioned``, e.g. ``"skip"``) decodes from the context frames as
    well as from the latent: :meth:`condition` computes what it reads of them, once per batch, and
    :meth:`decode` takes that and the index in the sequence of each frame it decodes.
    """

    def __init__(self, encoder: nn.Module, cell: nn.Module, predictor: nn.Module, decoder: nn.Module,
                 feedback: str = "latent") -> None:
        super().__init__()
        self.latent_dim = cell.latent_dim
        self.feedback = feedback
        self.encoder = encoder
        self.cell = cell
        self.predictor = predictor
        self.decoder = decoder

    @property
    def feedback(self) -> str:
        return self._feedback

    @feedback.setter
    def feedback(self, name: str) -> None:
        if name not in FEEDBACKS:
            raise MatapError(f"feedback must be one of {', '.join(FEEDBACKS)}; got {name!r}")
        self._feedback, self.feed = name, FEEDBACKS[name]()

    def compile_parts(self) -> None:
        """``torch.compile`` the encoder, cell, predictor and decoder in place (``nn.Module.compile``): each is
        compiled at its first call; parameters, state_dict keys and checkpoints stay as they are."""
        for part in (self.encoder, self.cell, self.predictor, self.decoder):
            part.compile()

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, 1, H, W) -> (B, T, d); frames as :func:`as_frames` takes them."""
        frames = as_frames(frames)
        B, T = frames.shape[:2]
        return self.encoder(frames.flatten(0, 1)).view(B, T, -1)

    @property
    def conditioned(self) -> bool:
        """Whether the decoder reads the context frames besides the latents (:meth:`condition`)."""
        return bool(getattr(self.decoder, "conditioned", False))

    def condition(self, context: torch.Tensor) -> Any:
        """What a conditioned decoder reads of the context frames (B, C, 1, H, W) (or as :func:`as_frames`
        takes them), for :meth:`decode`; None for a decoder that reads the latents alone (the paper's)."""
        if not self.conditioned:
            return None
        return self.decoder.condition(self.encoder, as_frames(context))

    def decode(self, z: torch.Tensor, cond: Any = None, at: int | torch.Tensor = 0) -> torch.Tensor:
        """(B, T, d) -> (B, T, 1, H, W) logits. ``z[:, i]`` decodes frame ``at + i`` of the sequence (or
        frame ``at[i]``, for a (T,) tensor of indices): a conditioned decoder reads ``cond``, the
        :meth:`condition` of the sequence's context frames, by that index; the paper's decoder reads
        neither."""
        B, T = z.shape[:2]
        if self.conditioned:
            if cond is None:
                raise MatapError(f"the decoder {type(self.decoder).__name__} decodes from the context frames too: "
                                 "give decode() the model's condition(context) of them")
            index = torch.arange(T, device=z.device) + at if isinstance(at, int) else at
            return self.decoder(z, cond, index)
        logits = self.decoder(z.flatten(0, 1))
        return logits.view(B, T, *logits.shape[1:])

    def unroll(self, z: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """Run the cell over (B, T, d) inputs; return outputs (B, T, d) and the last state."""
        if state is None:
            state = self.cell.initial_state(z.shape[0], z.device, z.dtype)
        return self.cell.unroll(z, state)

    def predict_sequence(self, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The predicted next latents at every step of (B, T, d) cell outputs ``h`` and inputs ``z``."""
        return self.predictor(h, z, torch.cat([z[:, :1], z[:, :-1]], dim=1))

    def forward(self, frames: torch.Tensor) -> TeacherForced:
        """Teacher-forced pass: z_t = E(x_t), z^_{t+1} = P(cell(z_<=t)); frames (B, T, 1, H, W), or as
        :func:`as_frames` takes them. Decode ``z_next`` for frames: ``torch.sigmoid(model.decode(out.z_next))``."""
        z = self.encode(frames)
        h, _ = self.unroll(z)
        return TeacherForced(z, self.predict_sequence(h, z))

    def rollout_latents(self, z_context: torch.Tensor, horizon: int, cond: Any = None) -> torch.Tensor:
        """Given (B, C, d) context latents, predict (B, horizon, d) future latents,
        feeding each prediction back into the cell (see ``feedback``)."""
        return self.rollout_steps(z_context, horizon, cond)[0]

    def rollout_steps(self, z_context: torch.Tensor, horizon: int, cond: Any = None
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, horizon, d) predicted latents and, where the feedback decodes them (frame feedback), the
        (B, horizon, 1, H, W) logits decoded on the way (else None). ``cond``: the :meth:`condition` of
        the context frames, which frame feedback with a conditioned decoder needs."""
        C = z_context.shape[1]
        h, state = self.unroll(z_context)
        before = z_context[:, -2] if z_context.shape[1] > 1 else None
        z_next = self.predictor(h[:, -1], z_context[:, -1], before)      # (B, d)
        last = z_context[:, -1]
        latents, logits = [z_next], []
        for step in range(horizon):
            frame = self.feed.decoded(self, z_next, cond, C + step)   # (B, 1, H, W) or None
            if frame is not None:
                logits.append(frame)
            if step == horizon - 1:
                break
            fed = self.feed.fed(self, z_next, frame)
            h_t, state = self.cell(fed, state)
            z_next = self.predictor(h_t, fed, last)
            last = fed
            latents.append(z_next)
        return torch.stack(latents, dim=1), (torch.stack(logits, dim=1) if logits else None)

    def rollout(self, context: torch.Tensor, horizon: int) -> torch.Tensor:
        """(B, C, 1, H, W) context frames (or as :func:`as_frames` takes them) -> (B, horizon, 1, H, W)
        predicted frames, floats in [0, 1]."""
        cond = self.condition(context)
        latents, logits = self.rollout_steps(self.encode(context), horizon, cond)
        return torch.sigmoid(self.decode(latents, cond, context.shape[1]) if logits is None else logits)
