"""PyTorch eager reference for `microvision bench throughput`: the same model (pytorch/models.py),
batch, precision (bf16 = torch.autocast(device, bfloat16); auto resolved as microvision does),
channels_last and step (forward, cross-entropy, backward, SGD Nesterov update), on synthetic
batches; median of repeats.

usage: .venv/bin/python pytorch/throughput.py --model simple_cnn --batch 128 [--precision auto|fp32|bf16]
"""
import argparse
import json
import os
import statistics
import time

import torch

import models
from args import PRECISIONS, non_negative_int, positive_int, resolve_precision


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="simple_cnn")
    ap.add_argument("--batch", type=positive_int, default=128)
    ap.add_argument("--precision", default="auto", choices=PRECISIONS)
    ap.add_argument("--steps", type=positive_int, default=20)
    ap.add_argument("--repeats", type=positive_int, default=5)
    ap.add_argument("--threads", type=non_negative_int, default=0, help="0: all cores")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    model = models.build(a.model).to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x = torch.randn(a.batch, 3, 32, 32, device=dev).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (a.batch,), device=dev)
    precision = resolve_precision(a.precision, dev)
    amp = precision == "bf16"

    def train_step():
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=amp):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss.item()

    def infer_step():
        with torch.no_grad(), torch.autocast(dev, dtype=torch.bfloat16, enabled=amp):
            model(x)[0, 0].item()

    model.train()
    for _ in range(3):
        train_step()
        infer_step()
    train, infer = [], []
    images = a.batch * a.steps
    for _ in range(a.repeats):
        t = time.perf_counter()
        for _ in range(a.steps):
            train_step()
        train.append(images / (time.perf_counter() - t))
        t = time.perf_counter()
        for _ in range(a.steps):
            infer_step()
        infer.append(images / (time.perf_counter() - t))
    med_t, med_i = statistics.median_high(train), statistics.median_high(infer)
    print(f"pytorch {a.model} batch {a.batch} {precision} on {dev} ({torch.get_num_threads()} threads): "
          f"train {med_t:.0f} img/s, inference {med_i:.0f} img/s (median of {a.repeats} x {a.steps} steps; "
          f"load average {os.getloadavg()[0]:.2f})")
    print(json.dumps({"train": train, "infer": infer, "train_median": med_t, "infer_median": med_i}))


if __name__ == "__main__":
    main()
