"""A PyTorch rank for tests/dist.rs: joins the torch.distributed group of RANK, WORLD_SIZE,
MASTER_ADDR, MASTER_PORT (Gloo) and runs the collectives `microvision dist check` runs, in the
same order: all-reduce of N floats (rank r gives r + 1), broadcast of rank 0's arange(N), barrier.

usage: dist_peer.py N
"""
import datetime
import json
import sys

import torch
import torch.distributed as dist

dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=120))
n = int(sys.argv[1]); rank, world = dist.get_rank(), dist.get_world_size()
t = torch.full((n,), float(rank + 1)); dist.all_reduce(t)
b = torch.arange(n, dtype=torch.float32) if rank == 0 else torch.zeros(n); dist.broadcast(b, 0)
dist.barrier()
print(json.dumps({"rank": rank, "sum_ok": bool((t == world * (world + 1) / 2).all()), "broadcast_ok": bool(torch.equal(b, torch.arange(n, dtype=torch.float32)))}))
dist.destroy_process_group()
