"""Would Winograd convolutions beat oneDNN's direct ones on this CPU? For each 3x3 "same"
convolution of airbench94 (src/models/airbench.rs), times forward and forward+backward of
oneDNN's direct convolution (channels_last, what microvision and the PyTorch reference call) against
Winograd F(4x4, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
arXiv 1509.09308) written with LibTorch ops: 6x6 input tiles, 36 batched GEMMs, inverse transform.
Autograd differentiates through the ops, so the backward is Winograd too. It also checks the result
and both gradients against the direct convolution, and whether LibTorch's own Winograd path
(NNPACK) runs on this CPU.

Written when fp32 convolutions took 89% of the airbench94 step on an AVX2-only CPU
(docs/results.md): Winograd does 2.2-3.8x fewer multiplications per output there, the only way
left below that floor for a driver calling the same kernels.

usage: .venv/bin/python pytorch/conv_winograd.py [--batch 500] [--repeats 5]
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from args import positive_int

# F(4x4, 3x3): Y = A^T [(G g G^T) * (B^T d B)] A, for correlation (what conv2d computes).
B_T = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
       [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
G = [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
     [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]
A_T = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]


def kron(m):
    """The 2-D transform X -> M X M^T of a tile, as one matrix on the flattened tile."""
    t = torch.tensor(m, dtype=torch.float64)
    return torch.kron(t, t).float()


KB, KG, KA = kron(B_T), kron(G), kron(A_T)  # (36, 36), (36, 9), (16, 36)

# airbench94's 3x3 convolutions: (in channels, out channels, height = width).
SHAPES = [(24, 64, 31), (64, 64, 15), (64, 256, 15), (256, 256, 7), (256, 256, 7), (256, 256, 3)]


def winograd_conv(x, w):
    """conv2d(x, w, padding=1) for x (B, C, H, W) in channels_last memory and w (Co, C, 3, 3)."""
    b, c, h, wd = x.shape
    co = w.shape[0]
    th, tw = (h + 3) // 4, (wd + 3) // 4
    xl = x.permute(0, 2, 3, 1)  # (B, H, W, C), a view of channels_last memory
    xp = F.pad(xl, (0, 0, 1, 4 * tw + 1 - wd, 1, 4 * th + 1 - h))
    tiles = xp.unfold(1, 6, 4).unfold(2, 6, 4)  # (B, th, tw, C, 6, 6), tiles overlap by 2
    n = b * th * tw
    v = (KB @ tiles.reshape(n * c, 36).t()).view(36, n, c)
    u = (KG @ w.reshape(co * c, 9).t()).view(36, co, c)
    m = torch.bmm(v, u.transpose(1, 2))  # (36, n, Co): the GEMMs
    y = (KA @ m.view(36, n * co)).view(4, 4, b, th, tw, co)
    y = y.permute(2, 3, 0, 4, 1, 5).reshape(b, 4 * th, 4 * tw, co)[:, :h, :wd, :]
    return y.permute(0, 3, 1, 2)


def direct_conv(x, w):
    return F.conv2d(x, w, padding=1)


def median_ms(fn, repeats):
    fn()  # warm-up: oneDNN primitive creation, allocator
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def rel_err(a, b):
    return ((a - b).abs().max() / a.abs().max()).item()


def compare(ci, co, hw, batch, repeats):
    """Times and errors of one shape: (direct fwd, wino fwd, direct fwd+bwd, wino fwd+bwd, errors)."""
    x = torch.randn(batch, ci, hw, hw).contiguous(memory_format=torch.channels_last)
    w = (torch.randn(co, ci, 3, 3) / (ci * 9) ** 0.5).contiguous(memory_format=torch.channels_last)
    grad_out = torch.randn(batch, co, hw, hw).contiguous(memory_format=torch.channels_last)

    def grads(conv):
        xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()
        conv(xg, wg).backward(grad_out)
        return xg.grad, wg.grad

    times = [median_ms(lambda: conv(x, w), repeats) for conv in (direct_conv, winograd_conv)]
    times += [median_ms(lambda: grads(conv), repeats) for conv in (direct_conv, winograd_conv)]
    errors = [rel_err(direct_conv(x, w), winograd_conv(x, w))]
    errors += [rel_err(d, g) for d, g in zip(grads(direct_conv), grads(winograd_conv))]
    return times, errors


def nnpack_runs(tries=5):
    """How many of `tries` small NNPACK convolutions ran (it failed on some calls and not others
    on the AVX2 EPYC where this was written)."""
    ran = 0
    for _ in range(tries):
        try:
            torch._nnpack_spatial_convolution(torch.randn(16, 64, 16, 16), torch.randn(64, 64, 3, 3), None, [1, 1])
            ran += 1
        except RuntimeError:
            pass
    return f"{ran} of {tries} calls ran"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=positive_int, default=500)
    p.add_argument("--repeats", type=positive_int, default=5)
    a = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {a.batch}, fp32; "
          f"NNPACK available: {torch.backends.nnpack.is_available()}, {nnpack_runs()}")
    print("conv (in->out @ size)   direct fwd  wino fwd  direct f+b  wino f+b  wino/direct f+b  "
          "rel. err (y, dx, dw)")
    total = [0.0, 0.0]
    for ci, co, hw in SHAPES:
        (df, wf, dfb, wfb), errs = compare(ci, co, hw, a.batch, a.repeats)
        total[0] += dfb
        total[1] += wfb
        print(f"{ci:>3}->{co:<3} @ {hw:>2}x{hw:<2}      {df:8.1f}  {wf:8.1f}  {dfb:10.1f}  {wfb:8.1f}  "
              f"{wfb / dfb:14.2f}x  " + ", ".join(f"{e:.0e}" for e in errs))
    print(f"all six, fwd+bwd ms: direct {total[0]:.0f}, winograd {total[1]:.0f} ({total[1] / total[0]:.2f}x)")


if __name__ == "__main__":
    main()
