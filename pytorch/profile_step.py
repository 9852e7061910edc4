"""Where a training step's time goes on the CPU: LibTorch's profiler over a few steps of a model
(pytorch/models.py, PyTorch eager, channels_last; the same kernels microvision calls), the top
operators, and the convolution backward split into depthwise convolutions (weights (C, 1, k, k))
by kernel size, and the others. Written to find why bf16 autocast trained EfficientNet-B0 slower
than fp32 on the development CPU (in PyTorch eager it still does; microvision now runs the 5x5
depthwise convolutions in fp32 there).

usage: .venv/bin/python pytorch/profile_step.py --model efficientnet_b0 --batch 64 --precision bf16
"""
import argparse

import torch

import models
from args import positive_int


def step_fn(model, x, y, precision):
    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        model.zero_grad(set_to_none=True)
        loss.backward()
    return step


def conv_backward_split(events):
    """Self CPU microseconds of the convolution backward by kind: {"depthwise KxK": us, "other": us}."""
    split = {}
    for e in events:
        if e.key != "aten::convolution_backward":
            continue
        weight = e.input_shapes[2]  # (grad_output, input, weight, ...)
        depthwise = len(weight) == 4 and weight[1] == 1
        kind = f"depthwise {weight[2]}x{weight[3]}" if depthwise else "other"
        split[kind] = split.get(kind, 0.0) + e.self_cpu_time_total
    return split


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="efficientnet_b0")
    ap.add_argument("--batch", type=positive_int, default=64)
    ap.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    ap.add_argument("--steps", type=positive_int, default=3)
    ap.add_argument("--top", type=positive_int, default=8)
    a = ap.parse_args()
    torch.manual_seed(0)
    model = models.build(a.model).train().to(memory_format=torch.channels_last)
    x = torch.randn(a.batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (a.batch,))
    step = step_fn(model, x, y, a.precision)
    for _ in range(2):  # kernel selection and allocator growth, untimed
        step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(a.steps):
            step()
    events = prof.key_averages(group_by_input_shape=True)
    total = sum(e.self_cpu_time_total for e in events)
    ms = lambda us: us / a.steps / 1e3  # noqa: E731
    parts = ", ".join(f"{kind} {ms(us):.0f} ms ({100 * us / total:.0f}%)"
                      for kind, us in sorted(conv_backward_split(events).items()))
    print(f"{a.model} batch {a.batch} {a.precision}: {ms(total):.0f} ms per step (forward + backward); "
          f"convolution backward: {parts}")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=a.top))


if __name__ == "__main__":
    main()
