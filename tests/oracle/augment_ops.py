"""Oracle for tests/data_policies.rs: applies torchvision's AutoAugment operations.

argv: images.bin (uint8, N x 3 x H x W), H, W, cases.json ([[op_name, magnitude], ...]).
Writes to stdout, for each case in order, the N transformed images (uint8, same layout)."""
import json
import sys

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.autoaugment import _apply_op

raw, h, w, cases = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.load(open(sys.argv[4]))
imgs = torch.from_numpy(np.fromfile(raw, dtype=np.uint8)).view(-1, 3, h, w)
out = sys.stdout.buffer
for op, magnitude in cases:
    for img in imgs:
        res = _apply_op(img.clone(), op, float(magnitude), interpolation=InterpolationMode.NEAREST, fill=None)
        out.write(res.contiguous().numpy().tobytes())
