"""Oracle for tests/models.rs: loads Rust-written weights into the PyTorch model (strict), runs the
same input in eval mode and in train mode + backward, and writes outputs and gradients.

usage: check_model.py MODEL NUM_CLASSES WEIGHTS.safetensors INPUT.safetensors OUT.safetensors [ARCH_JSON]
(ARCH_JSON: searchnet's architecture, {"widths": [...], "depths": [...], "block": ..., "kernel": ...},
or "-" for none). The input's shape (B, C, H, W) gives the model's input channels and size.
"""
import json
import sys

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, __file__.rsplit("/tests/", 1)[0] + "/pytorch")
import models  # noqa: E402

name, num_classes, weights, inputs, out = sys.argv[1:6]
torch.manual_seed(0)
arch = json.loads(sys.argv[6]) if len(sys.argv) > 6 and sys.argv[6] != "-" else None
x = load_file(inputs)["x"]
in_channels, input_size = x.shape[1], x.shape[2]
model = models.build(name, int(num_classes), in_channels, arch=arch, input_size=input_size)
state = load_file(weights)
model.load_state_dict(state, strict=True)
# Trainable parameters (fixed ones, e.g. airbench's whitening filters, are not counted).
result = {"n_params": torch.tensor(sum(p.numel() for p in model.parameters() if p.requires_grad))}
model.eval()
with torch.no_grad():
    result["eval_out"] = model(x)
# Train mode without dropout randomness: the Rust side uses the same p=0 override.
for m in model.modules():
    if isinstance(m, torch.nn.Dropout):
        m.p = 0.0
    if hasattr(m, "drop"):
        m.drop = 0.0  # stochastic depth
model.train()
y = model(x)
(y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
for n, p in model.named_parameters():
    if p.requires_grad:
        result["grad." + n] = p.grad
# BatchNorm's running statistics after the one train-mode pass (each model's momentum and eps).
for n, b in model.named_buffers():
    result["buf." + n] = b.detach().clone()
save_file({k: v.contiguous() for k, v in result.items()}, out)
