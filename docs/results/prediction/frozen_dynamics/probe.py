"""Does the latent rollout fail for want of training of the dynamics, or for the latent it works in?

Takes a trained run, freezes its encoder and decoder, trains a fresh copy of its cell and predictor
on the frozen encoder's latents of new training sequences (no decoding, so it is cheap), and scores
the latent rollout 10 -> 10, decoded by the frozen decoder, on held-out sequences after each epoch.

    python probe.py RUN HELDOUT.npy [TRAIN_SEQUENCES] [EPOCHS]

HELDOUT.npy in the mnist_test_seq.npy layout (time first), e.g. from
``matap data --config forecast --split test data.val_size=1000 --save HELDOUT.npy --save-layout TN``.
Loss per batch of 32: the teacher-forced latent error plus the error of a latent rollout from a
random 2-9 frames of context, each the mean squared error against the encodings of the true frames.
"""

import copy
import sys
import time

import numpy as np
import torch

from matap.checkpoint import load_model
from matap.data.sets import training_stream
from matap.metrics import mse_per_frame, ssim

run, heldout = sys.argv[1], sys.argv[2]
n_train = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
epochs = int(sys.argv[4]) if len(sys.argv) > 4 else 12
torch.manual_seed(0)
model, cfg, _ = load_model(run)
model.requires_grad_(False)
held = np.load(heldout, mmap_mode="r")[:, :300]                              # (T, N, H, W): 300 sequences
x = torch.from_numpy(np.ascontiguousarray(held.transpose(1, 0, 2, 3))).float().div(255).unsqueeze(2)


def batched(fn, tensor):
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        return torch.cat([fn(tensor[i:i + 100]).float() for i in range(0, len(tensor), 100)])


def report(pred, name):
    truth = x[:, 10:]
    s = ssim(pred.flatten(0, 1), truth.flatten(0, 1)).view(len(truth), 10).mean(0)
    m = mse_per_frame(pred.flatten(0, 1), truth.flatten(0, 1)).view(len(truth), 10).mean(0)
    print(f"{name:38s} SSIM {s.mean():.4f} (t=11 {s[0]:.3f}, t=15 {s[4]:.3f}, t=20 {s[9]:.3f})  MSE {m.mean():.1f}",
          flush=True)


def latent_rollout(m, z_context, horizon):
    h, state = m.unroll(z_context)
    z = m.predict(h[:, -1], z_context[:, -1])
    out = [z]
    for _ in range(horizon - 1):
        h_t, state = m.cell(z, state)
        z = m.predict(h_t, z)
        out.append(z)
    return torch.stack(out, 1)


def decode(z):
    return batched(lambda zz: torch.sigmoid(model.decode(zz)), z)


z_held = batched(model.encode, x)
report(decode(z_held[:, 10:]), "autoencoder (the true frames' latents)")
report(torch.zeros_like(x[:, 10:]), "black frames")
with torch.no_grad():
    report(decode(latent_rollout(model, z_held[:, :10], 10)), "the run's own cell, latent feedback")
t0 = time.time()
videos = training_stream(cfg.data).__getitems__(list(range(100000, 100000 + n_train)))  # sequences it never saw
z_train = batched(model.encode, videos.float().div(255).unsqueeze(2))
print(f"encoded {n_train} training sequences in {time.time() - t0:.0f} s", flush=True)
dyn = copy.deepcopy(model)
for module in list(dyn.cell.modules()) + list(dyn.predictor.modules()):
    if module is not dyn.cell and hasattr(module, "reset_parameters"):
        module.reset_parameters()
params = list(dyn.cell.parameters()) + list(dyn.predictor.parameters())
for p in params:
    p.requires_grad_(True)
opt = torch.optim.Adam(params, 1e-3)
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * (n_train // 32))
for epoch in range(epochs):
    dyn.cell.train(), dyn.predictor.train()
    order = torch.randperm(n_train)
    for i in range(0, n_train - 31, 32):
        zb = z_train[order[i:i + 32]]
        h, _ = dyn.unroll(zb[:, :-1])
        teacher = ((dyn.predict(h, zb[:, :-1]) - zb[:, 1:]) ** 2).mean()
        start = int(torch.randint(2, 10, ()))
        rolled = ((latent_rollout(dyn, zb[:, :start], zb.shape[1] - start) - zb[:, start:]) ** 2).mean()
        opt.zero_grad()
        (teacher + rolled).backward()
        opt.step()
        sched.step()
    dyn.eval()
    with torch.no_grad():
        z_roll = latent_rollout(dyn, z_held[:, :10], 10)
        err = ((z_roll - z_held[:, 10:]) ** 2).mean() / z_held.var()
    report(decode(z_roll), f"epoch {epoch + 1}, held-out latent error {err:.3f}")
print(f"{time.time() - t0:.0f} s in all")
