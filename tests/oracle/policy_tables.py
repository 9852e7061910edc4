"""Oracle for tests/data_policies.rs: torchvision's augmentation tables as JSON on stdout.

usage: policy_tables.py HEIGHT WIDTH

- "autoaugment_cifar10": AutoAugment's CIFAR-10 sub-policies, [[op, probability, bin or null], x2]
- "spaces": for each space ("autoaugment" 10 bins, "randaugment" 31 bins, "trivialaugment" the wide
  one, 31 bins), its ops in torchvision's order with every bin's magnitude and whether it is signed
"""
import json
import sys

import torch
from torchvision.transforms import autoaugment as aa

h, w = int(sys.argv[1]), int(sys.argv[2])


def space(s):
    return [[op, [float(v) for v in mags.flatten().tolist()] if mags.numel() else [], bool(signed)]
            for op, (mags, signed) in s.items()]


auto = aa.AutoAugment(aa.AutoAugmentPolicy.CIFAR10)
out = {
    "autoaugment_cifar10": [[list(step) for step in sub] for sub in auto._get_policies(aa.AutoAugmentPolicy.CIFAR10)],
    "spaces": {
        "autoaugment": space(auto._augmentation_space(10, (h, w))),
        "randaugment": space(aa.RandAugment()._augmentation_space(31, (h, w))),
        "trivialaugment": space(aa.TrivialAugmentWide()._augmentation_space(31)),
    },
}
print(json.dumps(out))
