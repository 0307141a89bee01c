"""``matap bench --layers``: the model's convolution and linear layers timed on their own.

The fraction of the matmul ceiling that a training step reaches is bounded by its layers: if
everything between them (normalisation, activations, the recurrence's bookkeeping, the optimiser)
took no time at all, the step would still take the sum of its layers' times. This module records
the inputs of every call of each ``Conv2d``, ``ConvTranspose2d`` and ``Linear`` layer in one
forward pass of the training loss, and in one teacher-forced inference (``reconstruct``), then
times each layer alone at those inputs: forward and backward for the training calls, forward
under ``inference_mode`` for the inference calls, in the run's precision, each the fastest of
``--repeats`` calls. The FLOPs the benchmark
counts for a step, over the summed time, give about the highest fraction of the ceiling the step
could reach with these layers and this machine's kernels.

Not timed: matrix products taken outside a layer's forward (the cells compute the GRU's gates
from the ``GRUCell``'s weights with ``F.linear``, and attention's score products), a small share
of the FLOPs. Each small layer call is timed with its own backward pass, which costs more than
inside the step. Both make the figure approximate, not a strict bound.

torch is imported inside the functions, so that ``matap --help`` stays fast."""

from __future__ import annotations

from typing import Any, Callable

LAYER_TYPES = ("Conv2d", "ConvTranspose2d", "Linear")


def record_calls(model: Any, run: Callable[[], Any]) -> list[dict[str, Any]]:
    """The calls of the model's layers during ``run()``: one row per (layer, inputs), in the order
    first seen, with how many times it was called so. Each input is described by its shape, dtype,
    memory format and whether it requires a gradient, so ``run`` should run the forward as the step
    does (autocast; gradients enabled for training); its outputs are dropped."""
    import torch

    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    handles = []

    def describe(t: Any) -> tuple[Any, ...]:
        channels_last = t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)
        return tuple(t.shape), str(t.dtype).removeprefix("torch."), t.requires_grad, channels_last

    def hook(name: str) -> Callable[..., None]:
        def record(module: Any, inputs: tuple[Any, ...]) -> None:
            tensors = [describe(t) for t in inputs if isinstance(t, torch.Tensor)]
            row = rows.setdefault((name, *tensors), {
                "layer": name, "type": type(module).__name__, "shapes": [list(t[0]) for t in tensors],
                "dtypes": [t[1] for t in tensors], "grads": [t[2] for t in tensors],
                "channels_last": [t[3] for t in tensors], "calls": 0})
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


def _inputs(row: dict[str, Any], device: Any, train: bool) -> list[Any]:
    """Random inputs as recorded; in training, a gradient where the step takes one."""
    import torch

    gen = torch.Generator().manual_seed(0)
    tensors = []
    for shape, dtype, grad, channels_last in zip(row["shapes"], row["dtypes"], row["grads"], row["channels_last"]):
        t = torch.randn(*shape, generator=gen).to(device, getattr(torch, dtype))
        if channels_last:
            t = t.contiguous(memory_format=torch.channels_last)
        tensors.append(t.requires_grad_(train and grad))
    return tensors


def time_layer(module: Any, row: dict[str, Any], device: Any, precision: str, train: bool,
               warmup: int, repeats: int) -> dict[str, float]:
    """One layer alone at one recorded call: ``{"s": fastest of ``repeats`` timed calls after ``warmup``,
    "flops": counted FLOPs}`` per call,
    of a forward + backward (``train``: gradients of the weights, and of the inputs that take one
    inside the network) or of a forward under ``inference_mode``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from matap.machine import median_seconds
    from matap.machine import precision_context as _autocast

    inputs = _inputs(row, device, train)

    def step() -> None:
        if not train:
            with torch.inference_mode(), _autocast(device, precision):
                module(*inputs)
            return
        with _autocast(device, precision):
            out = module(*inputs)
        out.backward(torch.ones_like(out))
        module.zero_grad(set_to_none=True)
        for t in inputs:
            t.grad = None

    with FlopCounterMode(display=False) as counter:
        step()
    # the fastest of the timed calls: the layer's own speed, with the page faults and allocator
    # returns that make single calls of a shared machine slower left out, as a floor should
    for _ in range(warmup):
        step()
    fastest = min(median_seconds(step, 0, 1, device) for _ in range(repeats))
    return {"s": fastest, "flops": counter.get_total_flops()}


def layer_bounds(model: Any, train_calls: list[dict[str, Any]], infer_calls: list[dict[str, Any]], device: Any,
                 precision: str, warmup: int, repeats: int, ceiling_gflops: float, train_flops_per_step: float,
                 infer_flops_per_step: float) -> dict[str, Any]:
    """Time every recorded call; per layer (in the order first called) its milliseconds and counted
    MFLOP per training step and per inference call (all its calls), with the fraction of the ceiling
    it reaches alone; and the bounds: the FLOPs the benchmark counts for a training step (forward x
    its factor) and for an inference call, over the layers' summed times."""
    modules = dict(model.named_modules())
    layers: dict[str, dict[str, Any]] = {}
    for kind, calls in (("train", train_calls), ("infer", infer_calls)):
        for row in calls:
            timing = time_layer(modules[row["layer"]], row, device, precision, kind == "train", warmup, repeats)
            layer = layers.setdefault(row["layer"], {
                "layer": row["layer"], "type": row["type"], "shapes": row["shapes"],
                "train_calls": 0, "infer_calls": 0, "train_ms_per_step": 0.0, "infer_ms_per_step": 0.0,
                "train_mflop_per_step": 0.0, "infer_mflop_per_step": 0.0})
            layer[f"{kind}_calls"] += row["calls"]
            layer[f"{kind}_ms_per_step"] += 1e3 * row["calls"] * timing["s"]
            layer[f"{kind}_mflop_per_step"] += row["calls"] * timing["flops"] / 1e6
    for layer in layers.values():
        for kind in ("train", "infer"):
            seconds = layer[f"{kind}_ms_per_step"] / 1e3
            layer[f"{kind}_fraction_of_ceiling"] = (1e6 * layer[f"{kind}_mflop_per_step"] / seconds
                                                    / (ceiling_gflops * 1e9) if seconds else None)
    rows = list(layers.values())
    train_s = sum(layer["train_ms_per_step"] for layer in rows) / 1e3
    infer_s = sum(layer["infer_ms_per_step"] for layer in rows) / 1e3
    return {
        "layers": rows,
        "layers_train_ms_per_step": 1e3 * train_s,
        "layers_infer_ms_per_step": 1e3 * infer_s,
        "layers_train_bound": train_flops_per_step / train_s / (ceiling_gflops * 1e9) if train_s else None,
        "layers_infer_bound": infer_flops_per_step / infer_s / (ceiling_gflops * 1e9) if infer_s else None,
    }


__all__ = ["LAYER_TYPES", "layer_bounds", "record_calls", "time_layer"]
