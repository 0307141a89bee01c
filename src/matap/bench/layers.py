"""``matap bench --layers``: every convolution and matrix product of a model timed on its own.

The fraction of the matmul ceiling that a training step reaches is bounded by its layers: if
everything between them (normalisation, activations, the recurrence's bookkeeping, the optimiser)
took no time at all, the step would still take the sum of its layers' times. This module records
the input shape of every call of each ``Conv2d``, ``ConvTranspose2d``, ``Linear`` and ``GRUCell``
in one forward pass of the training loss, then times each layer alone at that shape, forward and
backward (what the training step does) and forward only under ``inference_mode`` (what inference
does), in the run's precision and memory format. The sum of those times, against the FLOPs the
benchmark counts for a step, gives the highest fraction of the ceiling the step could reach with
these layer shapes and this machine's kernels.

torch is imported inside the functions, so that ``matap --help`` stays fast."""

from __future__ import annotations

from typing import Any, Callable

LAYER_TYPES = ("Conv2d", "ConvTranspose2d", "Linear", "GRUCell")


def record_calls(model: Any, run: Callable[[], Any]) -> list[dict[str, Any]]:
    """The calls of the model's layers during ``run()``: one row per (layer, inputs), in the order
    first seen, with how many times it was called so. Each input is described by its shape, dtype
    and whether it requires a gradient, so ``run`` should run the forward as the step does
    (autocast, gradients enabled); its outputs are dropped."""
    import torch

    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    handles = []

    def hook(name: str) -> Callable[..., None]:
        def record(module: Any, inputs: tuple[Any, ...]) -> None:
            tensors = [t for t in inputs if isinstance(t, torch.Tensor)]
            key = (name, *((tuple(t.shape), str(t.dtype), t.requires_grad) for t in tensors))
            row = rows.setdefault(key, {"layer": name, "type": type(module).__name__,
                                        "shapes": [list(t.shape) for t in tensors],
                                        "dtypes": [str(t.dtype).removeprefix("torch.") for t in tensors],
                                        "grads": [t.requires_grad for t in tensors], "calls": 0})
            row["calls"] += 1
        return record

    for name, module in model.named_modules():
        if type(module).__name__ in LAYER_TYPES:
            handles.append(module.register_forward_pre_hook(hook(name)))
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    return list(rows.values())


def _inputs(row: dict[str, Any], device: Any, channels_last: bool, train: bool) -> list[Any]:
    """Random inputs of the recorded shapes and dtypes; in training, a gradient where the step takes one."""
    import torch

    gen = torch.Generator().manual_seed(0)
    tensors = []
    for shape, dtype, grad in zip(row["shapes"], row["dtypes"], row["grads"]):
        t = torch.randn(*shape, generator=gen).to(device, getattr(torch, dtype))
        if channels_last and len(shape) == 4:
            t = t.contiguous(memory_format=torch.channels_last)
        tensors.append(t.requires_grad_(train and grad))
    return tensors


def time_layer(module: Any, row: dict[str, Any], device: Any, precision: str, channels_last: bool,
               warmup: int, repeats: int) -> dict[str, Any]:
    """One layer alone at its recorded inputs: median seconds and counted FLOPs of a forward + backward
    (gradients of the weights, and of the inputs that take one inside the network) and of a forward
    under ``inference_mode``; per call."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from matap.bench.measure import _autocast
    from matap.machine import median_seconds

    train_inputs = _inputs(row, device, channels_last, train=True)
    infer_inputs = _inputs(row, device, channels_last, train=False)

    def train() -> None:
        with _autocast(device, precision):
            out = module(*train_inputs)
        out = out[0] if isinstance(out, tuple) else out
        out.backward(torch.ones_like(out))
        module.zero_grad(set_to_none=True)
        for t in train_inputs:
            t.grad = None

    def infer() -> None:
        with torch.inference_mode(), _autocast(device, precision):
            module(*infer_inputs)

    with FlopCounterMode(display=False) as counter:
        train()
    train_flops = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        infer()
    infer_flops = counter.get_total_flops()
    return {"train_s": median_seconds(train, warmup, repeats, device), "train_flops": train_flops,
            "infer_s": median_seconds(infer, warmup, repeats, device), "infer_flops": infer_flops}


def layer_bounds(model: Any, rows: list[dict[str, Any]], device: Any, precision: str, channels_last: bool,
                 warmup: int, repeats: int, ceiling_gflops: float, train_flops_per_step: float,
                 infer_flops_per_step: float) -> dict[str, Any]:
    """Time every recorded layer call; per layer its milliseconds per step (all its calls) and the
    fraction of the ceiling it reaches alone; and the bounds: the FLOPs the benchmark counts for a
    training step (forward x its factor) and for an inference call, over the layers' summed time."""
    modules = dict(model.named_modules())
    layers = []
    for row in rows:
        timing = time_layer(modules[row["layer"]], row, device, precision, channels_last, warmup, repeats)
        calls = row["calls"]
        layers.append({
            **row,
            "train_ms_per_step": 1e3 * calls * timing["train_s"],
            "infer_ms_per_step": 1e3 * calls * timing["infer_s"],
            "train_mflop_per_step": calls * timing["train_flops"] / 1e6,
            "infer_mflop_per_step": calls * timing["infer_flops"] / 1e6,
            "train_fraction_of_ceiling": timing["train_flops"] / timing["train_s"] / (ceiling_gflops * 1e9),
            "infer_fraction_of_ceiling": timing["infer_flops"] / timing["infer_s"] / (ceiling_gflops * 1e9),
        })
    train_s = sum(layer["train_ms_per_step"] for layer in layers) / 1e3
    infer_s = sum(layer["infer_ms_per_step"] for layer in layers) / 1e3
    return {
        "layers": layers,
        "layers_train_ms_per_step": 1e3 * train_s,
        "layers_infer_ms_per_step": 1e3 * infer_s,
        "layers_train_bound": train_flops_per_step / train_s / (ceiling_gflops * 1e9) if train_s else None,
        "layers_infer_bound": infer_flops_per_step / infer_s / (ceiling_gflops * 1e9) if infer_s else None,
    }


__all__ = ["LAYER_TYPES", "layer_bounds", "record_calls", "time_layer"]
