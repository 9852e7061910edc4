"""Plain-PyTorch reference of microvision's fast recipes (configs/speedrun94.toml, after airbench94:
Jordan 2024, arXiv 2404.00498; configs/speedrun94_muon.toml with --recipe muon, after
airbench94_muon), timed the same way as `microvision bench speedrun`: training time =
the epochs' step loops (per-epoch validation excluded), whitening init = setup, final TTA
evaluation = eval time. Same model (pytorch/models.py), same precision as microvision's
`precision = "auto"`: bf16 mixed precision (torch.autocast(device, bfloat16), Muon's Newton-Schulz
in bf16) on CUDA and on CPUs with native bf16, fp32 elsewhere; channels_last; same
hyper-parameters.

usage: .venv/bin/python pytorch/speedrun.py --data ../shared/data [--recipe airbench94|muon] [--runs 1]
       [--seed 0] [--epochs N (default: the recipe's)] [--precision auto|fp32|bf16]
prints one line per run and a final JSON line.
"""
import argparse
import json
import os
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

import models
from args import PRECISIONS, non_negative_int, positive_int, resolve_precision

MEAN = (0.49139968, 0.48215841, 0.44653091)
STD = (0.24703223, 0.24348513, 0.26158784)
SMOOTHING, WHITEN_BIAS_EPOCHS, PAD, NORM_LR_SCALE, MOMENTUM = 0.2, 3, 2, 64.0, 0.85
# The hyper-parameters of the two config files (mean loss; see their comments).
RECIPES = {
    "airbench94": dict(batch=1024, epochs=10, lr=1.5, wd=0.00133043, lookahead_every=5, schedule="triangle"),
    "muon": dict(batch=2000, epochs=8, lr=1.6562, wd=0.0024152, lookahead_every=0, schedule="linear",
                 muon_lr=0.24, muon_momentum=0.6, ns_steps=3),
}


def load_cifar(root):
    """(train_x, train_y), (test_x, test_y): uint8 (N, 3, 32, 32) and int64 labels."""
    d = os.path.join(root, "cifar-10-batches-bin")

    def read(names):
        raw = np.concatenate([np.fromfile(os.path.join(d, n), dtype=np.uint8).reshape(-1, 3073) for n in names])
        return torch.from_numpy(raw[:, 1:].reshape(-1, 3, 32, 32).copy()), torch.from_numpy(raw[:, 0].astype(np.int64))

    return read([f"data_batch_{i}.bin" for i in range(1, 6)]), read(["test_batch.bin"])


def normalize(x):
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    return (x.float() / 255 - mean) / std


def whiten_(conv, images, eps=5e-4):
    """Sets the 2x2 conv to the patch-whitening filters of `images` (and their negations)."""
    c, k = images.shape[1], conv.weight.shape[-1]
    patches = images.double().unfold(2, k, 1).unfold(3, k, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k)
    cov = patches.T @ patches / len(patches)
    vals, vecs = torch.linalg.eigh(cov)
    vals, vecs = vals.flip(0), vecs.T.flip(0)
    scaled = (vecs / (vals + eps).sqrt().unsqueeze(1)).view(-1, c, k, k)
    with torch.no_grad():
        conv.weight.copy_(torch.cat([scaled, -scaled]).float())


def translate_reflect(x, gen):
    """Random translation by up to PAD px with reflect padding, one offset pair per image."""
    b, _, h, w = x.shape
    dev = x.device
    padded = F.pad(x.float(), (PAD,) * 4, mode="reflect")
    dy = torch.randint(0, 2 * PAD + 1, (b, 1), generator=gen).to(dev)
    dx = torch.randint(0, 2 * PAD + 1, (b, 1), generator=gen).to(dev)
    rows = (dy + torch.arange(h, device=dev)).view(b, 1, h, 1)
    cols = (dx + torch.arange(w, device=dev)).view(b, 1, 1, w)
    bi, ci = torch.arange(b, device=dev).view(b, 1, 1, 1), torch.arange(3, device=dev).view(1, 3, 1, 1)
    return padded[bi, ci, rows, cols]


def tta_logits(model, x):
    """airbench's TTA level 2: mirror, plus the mirrored mean over two diagonal 1-px translations."""
    mirror = lambda v: 0.5 * model(v) + 0.5 * model(v.flip(-1))  # noqa: E731
    padded = F.pad(x, (1,) * 4, mode="reflect")
    shifted = 0.5 * mirror(padded[:, :, 0:32, 0:32]) + 0.5 * mirror(padded[:, :, 2:34, 2:34])
    return 0.5 * mirror(x) + 0.5 * shifted


def evaluate(model, x, y, amp, dev, tta):
    model.eval()
    correct = 0
    with torch.no_grad(), amp():
        for i in range(0, len(x), 2000):
            xb = normalize(x[i : i + 2000].to(dev)).contiguous(memory_format=torch.channels_last)
            out = tta_logits(model, xb) if tta else model(xb)
            correct += (out.argmax(1).cpu() == y[i : i + 2000]).sum().item()
    model.train()
    return correct / len(x)


def lookahead_(model, slow, decay):
    with torch.no_grad():
        for k, w in model.state_dict().items():
            if k in slow:
                slow[k].lerp_(w, 1 - decay)
                w.copy_(slow[k])


def triangle(step, total):
    rise = int(0.23 * total)
    if step < rise:
        f = step / rise
        return 0.2 * (1 - f) + f
    f = (step - rise) / (total - rise)
    return (1 - f) + 0.07 * f


def newton_schulz(g, steps, dtype):
    """Muon's quintic Newton-Schulz iteration towards U V^T, in `dtype` (Jordan 2024: bf16)."""
    a, b, c = (3.4445, -4.7750, 2.0315)
    x = g.to(dtype)
    tall = x.size(0) > x.size(1)
    if tall:
        x = x.T
    x = x / (x.norm() + 1e-7)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


class Muon(torch.optim.Optimizer):
    """airbench94_muon's filter optimizer: Nesterov momentum, each filter renormalised to norm
    sqrt(out) before the step, the update orthogonalised; no weight decay."""

    def __init__(self, params, lr, momentum, ns_steps, ns_dtype):
        super().__init__(params, dict(lr=lr, momentum=momentum, ns_steps=ns_steps, ns_dtype=ns_dtype))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if "buf" not in self.state[p]:
                    self.state[p]["buf"] = torch.zeros_like(p.grad)
                buf = self.state[p]["buf"]
                buf.lerp_(p.grad, 1 - group["momentum"])
                u = p.grad.lerp(buf, group["momentum"])
                p.mul_(len(p) ** 0.5 / p.norm())
                o = newton_schulz(u.reshape(len(u), -1), group["ns_steps"], group["ns_dtype"]).view(u.shape)
                p.add_(o.to(p.dtype), alpha=-group["lr"])


def optimizers(model, h, dtype):
    """The recipe's optimizers: SGD (BN shifts and, with Muon, the whitening bias at 64x) and
    Muon for the conv filters when the recipe has one."""
    fast = lambda n: "norm" in n or (h.get("muon_lr") and n == "whiten.bias")  # noqa: E731
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    muon = lambda p: bool(h.get("muon_lr")) and p.dim() == 4  # noqa: E731
    filters = [p for n, p in named if muon(p)]
    scaled = [p for n, p in named if fast(n)]
    other = [p for n, p in named if not fast(n) and not muon(p)]
    lr, wd = h["lr"], h["wd"]
    groups = [dict(params=scaled, lr=lr * NORM_LR_SCALE, weight_decay=wd / NORM_LR_SCALE),
              dict(params=other, lr=lr, weight_decay=wd)]
    opts = [torch.optim.SGD(groups, momentum=MOMENTUM, nesterov=True)]
    if filters:
        opts.append(Muon(filters, lr=h["muon_lr"], momentum=h["muon_momentum"], ns_steps=h["ns_steps"], ns_dtype=dtype))
    return opts


def autocast(dev, dtype):
    """bf16 autocast when the run's dtype is bf16; a no-op context in fp32."""
    return torch.autocast(dev, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16)


def warm_up(dev, batch, dtype):
    """Untimed first steps (kernel selection, allocator growth), as `bench speedrun` does."""
    model = models.build("airbench94").to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9, nesterov=True)
    x = torch.randn(batch, 3, 32, 32, device=dev).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=dev)
    for _ in range(3):
        with autocast(dev, dtype):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss.item()


def run(seed, epochs, data, dev, h, dtype):
    (train_x, train_y), (test_x, test_y) = data
    # The dataset lives on the compute device, as in microvision's loader.
    train_x, train_y = train_x.to(dev), train_y.to(dev)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    amp = lambda: autocast(dev, dtype)  # noqa: E731
    model = models.build("airbench94").to(dev).to(memory_format=torch.channels_last)
    t = time.perf_counter()
    whiten_(model.whiten, normalize(train_x[:5000]).to(dev))
    setup = time.perf_counter() - t
    opts = optimizers(model, h, dtype)
    batch = h["batch"]
    per_epoch = len(train_x) // batch
    total = per_epoch * epochs
    shape = (lambda s: triangle(s, total)) if h["schedule"] == "triangle" else (lambda s: 1 - s / total)
    scheds = [torch.optim.lr_scheduler.LambdaLR(o, shape) for o in opts]
    slow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    flip_base = (torch.rand(len(train_x), generator=gen) < 0.5).to(dev)
    every = h["lookahead_every"]
    train_secs, step = 0.0, 0
    for epoch in range(epochs):
        model.whiten.bias.requires_grad = epoch < WHITEN_BIAS_EPOCHS
        perm = torch.randperm(len(train_x), generator=gen)
        t = time.perf_counter()
        for b in range(per_epoch):
            idx = perm[b * batch : (b + 1) * batch].to(dev)
            x = translate_reflect(train_x[idx], gen)
            flip = flip_base[idx] ^ (epoch % 2 == 1)
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            x = normalize(x).contiguous(memory_format=torch.channels_last)
            with amp():
                loss = F.cross_entropy(model(x).float(), train_y[idx], label_smoothing=SMOOTHING)
            for o in opts:
                o.zero_grad(set_to_none=True)
            loss.backward()  # bf16: no loss scaling
            for o in opts:
                o.step()
            for s in scheds:
                s.step()
            step += 1
            if every and step % every == 0:
                lookahead_(model, slow, 0.95**every * (step / total) ** 3)
            if every and step == total:
                lookahead_(model, slow, 1.0)
            loss.item()
        if dev == "cuda":
            torch.cuda.synchronize()
        train_secs += time.perf_counter() - t
        val = evaluate(model, test_x, test_y, amp, dev, tta=False)
        print(f"  epoch {epoch + 1}/{epochs}: val {val * 100:.2f}%  {time.perf_counter() - t:.1f} s", flush=True)
    t = time.perf_counter()
    acc = evaluate(model, test_x, test_y, amp, dev, tta=True)
    return dict(seed=seed, test_acc=acc, train_secs=train_secs, setup_secs=setup, eval_secs=time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.environ.get("MICROVISION_DATA", "data"))
    ap.add_argument("--runs", type=positive_int, default=1)
    ap.add_argument("--seed", type=non_negative_int, default=0)
    ap.add_argument("--recipe", choices=sorted(RECIPES), default="airbench94")
    ap.add_argument("--epochs", type=non_negative_int, default=0, help="0: the recipe's")
    ap.add_argument("--threads", type=non_negative_int, default=0, help="0: all cores")
    ap.add_argument("--precision", choices=PRECISIONS, default="auto", help="auto: as microvision resolves it")
    a = ap.parse_args()
    batches = os.path.join(a.data, "cifar-10-batches-bin")
    if not os.path.isfile(os.path.join(batches, "test_batch.bin")):
        hint = " (pass its parent directory)" if os.path.isfile(os.path.join(a.data, "test_batch.bin")) else ""
        ap.error(f"--data {a.data}: expected a directory holding cifar-10-batches-bin/{hint}")
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    precision = resolve_precision(a.precision, dev)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    data = load_cifar(a.data)
    t = time.perf_counter()
    warm_up(dev, RECIPES[a.recipe]["batch"], dtype)
    print(f"warm-up (untimed): {time.perf_counter() - t:.1f} s", flush=True)
    results = []
    for i in range(a.runs):
        h = RECIPES[a.recipe]
        r = run(a.seed + i, a.epochs or h["epochs"], data, dev, h, dtype)
        print(
            f"pytorch run {i + 1}/{a.runs} seed {r['seed']}: test accuracy {r['test_acc'] * 100:.2f}%  "
            f"train {r['train_secs']:.1f} s  setup {r['setup_secs']:.2f} s  eval {r['eval_secs']:.1f} s "
            f"({precision}, {torch.get_num_threads()} threads)",
            flush=True,
        )
        results.append(r)
    accs = [r["test_acc"] * 100 for r in results]
    summary = dict(runs=len(results), acc_mean=statistics.mean(accs), train_secs_mean=statistics.mean(r["train_secs"] for r in results))
    print(json.dumps(dict(summary=summary, runs=results, precision=precision)))  # as `bench speedrun`


if __name__ == "__main__":
    main()
