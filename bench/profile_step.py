"""Where a training step's time goes on the CPU: LibTorch's profiler over a few steps of a model
(bench/models.py, PyTorch eager, channels_last; the same kernels microvision calls), the top
operators, and the convolution backward split into depthwise (weights (C, 1, k, k)) and other
convolutions. Written to explain why bf16 autocast trains EfficientNet-B0 slower than fp32 here.

usage: .venv/bin/python bench/profile_step.py --model efficientnet_b0 --batch 64 --precision bf16
"""
import argparse

import torch

import models


def step_fn(model, x, y, precision):
    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        model.zero_grad(set_to_none=True)
        loss.backward()
    return step


def conv_backward_split(events):
    """Self CPU microseconds of the convolution backward: (depthwise, other)."""
    depthwise = other = 0.0
    for e in events:
        if e.key != "aten::convolution_backward":
            continue
        weight = e.input_shapes[2]
        if len(weight) == 4 and weight[1] == 1:
            depthwise += e.self_cpu_time_total
        else:
            other += e.self_cpu_time_total
    return depthwise, other


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="efficientnet_b0")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--top", type=int, default=8)
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
    depthwise, other = conv_backward_split(events)
    ms = lambda us: us / a.steps / 1e3  # noqa: E731
    print(f"{a.model} batch {a.batch} {a.precision}: {ms(total):.0f} ms per step (forward + backward); "
          f"depthwise conv backward {ms(depthwise):.0f} ms ({100 * depthwise / total:.0f}%), "
          f"other conv backward {ms(other):.0f} ms ({100 * other / total:.0f}%)")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=a.top))


if __name__ == "__main__":
    main()
