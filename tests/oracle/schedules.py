"""Oracle for tests/train_schedules.rs: learning rates per step from PyTorch's own schedulers
(airbench's triangle from its np.interp formula), for the cases given as JSON on stdin.

Each case: {"name", "base", "total", "warmup", ...}; prints a JSON list of lists of rates."""
import json
import sys

import numpy as np
import torch
from torch.optim import lr_scheduler as S


def rates(case):
    base, total, warmup = case["base"], case["total"], case.get("warmup", 0)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base)
    name = case["name"]
    if name == "triangle":
        rise = int(case["pct"] * total)
        return list(np.interp(np.arange(total), [0, rise, total], [case["start"], 1.0, case["end"]]) * base)
    if name == "onecycle":
        sched = S.OneCycleLR(opt, max_lr=base, total_steps=total, pct_start=case["pct"], div_factor=case["div"],
                             final_div_factor=case["final_div"], anneal_strategy="cos", cycle_momentum=False)
    else:
        after = {
            "constant": lambda: S.ConstantLR(opt, factor=1.0, total_iters=0),
            "step": lambda: S.StepLR(opt, step_size=case["every"], gamma=case["gamma"]),
            "multistep": lambda: S.MultiStepLR(opt, milestones=[m - warmup for m in case["milestones"]], gamma=case["gamma"]),
            "cosine": lambda: S.CosineAnnealingLR(opt, T_max=total - warmup, eta_min=case["min_ratio"] * base),
            "linear": lambda: S.LinearLR(opt, start_factor=1.0, end_factor=case["min_ratio"], total_iters=total - warmup),
        }[name]
        if warmup > 0:
            warm = S.LinearLR(opt, start_factor=1.0 / warmup, end_factor=1.0, total_iters=warmup - 1)
            sched = S.SequentialLR(opt, [warm, after()], milestones=[warmup])
        else:
            sched = after()
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


print(json.dumps([rates(c) for c in json.load(sys.stdin)]))
