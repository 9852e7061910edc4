"""PyTorch DistributedDataParallel on the data and initial weights of a microvision run, for
tests/dist_train.rs.

usage:
  ddp_peer.py init MODEL OUT.safetensors
      one process: writes MODEL's PyTorch initialisation (seed 0), the weights microvision
      starts from (model.init_from)
  torchrun --standalone --nproc-per-node=N ddp_peer.py train MODEL DATA_DIR INIT ENV_JSON STEPS LR OUT
      N ranks (Gloo, CPU, fp32): the CIFAR-10 binary training files in DATA_DIR, in file order,
      are one global batch (microvision's data.batch_size = all of them, no augmentation), each
      rank a consecutive slice, normalised by the run's env.json; STEPS steps of
      torch.optim.SGD(LR, momentum 0.9, Nesterov, weight decay 5e-4), microvision's default
      optimizer at a constant rate; rank 0 writes the final weights to OUT.
"""
import datetime
import json
import os
import sys

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "pytorch"))
import models  # noqa: E402


def init(name, out):
    torch.manual_seed(0)
    model = models.build(name)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out)


def cifar_train(data_dir):
    records = [np.fromfile(os.path.join(data_dir, f"data_batch_{i}.bin"), np.uint8) for i in range(1, 6)]
    records = np.concatenate(records).reshape(-1, 1 + 3072)
    labels = torch.from_numpy(records[:, 0].astype(np.int64))
    images = torch.from_numpy(records[:, 1:].reshape(-1, 3, 32, 32).copy()).float()
    return images, labels


def train(name, data_dir, init_path, env_path, steps, lr, out):
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=300))
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(1)
    env = json.load(open(env_path))
    mean = torch.tensor(env["norm_mean"]).view(1, 3, 1, 1)
    std = torch.tensor(env["norm_std"]).view(1, 3, 1, 1)
    images, labels = cifar_train(data_dir)
    x = (images / 255.0 - mean) / std
    n = len(labels)
    sizes = [n // world + (1 if r < n % world else 0) for r in range(world)]
    start = sum(sizes[:rank])
    x, y = x[start : start + sizes[rank]], labels[start : start + sizes[rank]]
    model = models.build(name)
    model.load_state_dict(load_file(init_path))
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    ddp.train()
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(ddp(x), y).backward()
        opt.step()
    if rank == 0:
        save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, out)
    dist.destroy_process_group()


if __name__ == "__main__":
    if sys.argv[1] == "init":
        init(sys.argv[2], sys.argv[3])
    else:
        name, data_dir, init_path, env_path, steps, lr, out = sys.argv[2:9]
        train(name, data_dir, init_path, env_path, int(steps), float(lr), out)
