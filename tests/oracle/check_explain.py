"""Oracle for tests/explain.rs: the same weights in the PyTorch transcription, explained by
pytorch-grad-cam (GradCAM, GradCAMPlusPlus, ScoreCAM) and captum (LayerGradCam, Saliency), and
attention rollout by a short transcription of Abnar & Zuidema (2020). Compares with the maps
microvision wrote and exits 1 naming the first mismatch.

usage: check_explain.py MODEL LAYER WEIGHTS.safetensors INPUT.safetensors OURS.safetensors METHODS
INPUT holds x (B, C, H, W) and classes (B,); OURS holds <method>.raw and <method>.maps.
"""
import sys

import numpy as np
import torch
from safetensors.torch import load_file

sys.path.insert(0, __file__.rsplit("/tests/", 1)[0] + "/pytorch")
import models  # noqa: E402

name, layer_name, weights, inputs, ours_file, methods = sys.argv[1:7]
inp, ours = load_file(inputs), load_file(ours_file)
x, classes = inp["x"], inp["classes"]
model = models.build(name, 10, x.shape[1])
model.load_state_dict(load_file(weights), strict=True)
model.eval()
layer = dict(model.named_modules())[layer_name]
failures = []


def grid(t):
    """pytorch-grad-cam's reshape_transform for ViTs: tokens without the class token, on the patch grid."""
    if t.dim() == 3:
        g = int(round((t.shape[1] - 1) ** 0.5))
        return t[:, 1:, :].reshape(t.shape[0], g, g, t.shape[2]).permute(0, 3, 1, 2)
    return t


def compare(what, ours, ref, rel=None, abs_=None):
    ours, ref = torch.as_tensor(ours).float(), torch.as_tensor(ref).float()
    if ours.shape != ref.shape:
        failures.append(f"{what}: shape {tuple(ours.shape)} vs reference {tuple(ref.shape)}")
        return
    diff = (ours - ref).abs().max().item()
    scale = ref.abs().max().item()
    limit = abs_ if abs_ is not None else rel * max(scale, 1e-12)
    print(f"{name} {what}: max |diff| {diff:.3g} (reference max {scale:.3g}, limit {limit:.3g})")
    if scale == 0:
        failures.append(f"{what}: the reference map is all zeros (the test would prove nothing)")
    if not diff <= limit:
        failures.append(f"{what}: differs by {diff:.3g} (limit {limit:.3g})")


from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, ScoreCAM  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

targets = [ClassifierOutputTarget(int(c)) for c in classes]
transform = grid if name.startswith("vit") else None
for method, cls in [("gradcam", GradCAM), ("gradcam++", GradCAMPlusPlus), ("scorecam", ScoreCAM)]:
    if method not in methods.split(","):
        continue
    cam = cls(model=model, target_layers=[layer], reshape_transform=transform)
    if method == "scorecam":
        cam.batch_size = 64
    maps = cam(input_tensor=x, targets=targets)  # normalised, resized (B, H, W)
    acts = cam.activations_and_grads.activations[0].numpy()
    grads = cam.activations_and_grads.gradients[0].numpy() if method != "scorecam" else None
    raw = np.maximum(cam.get_cam_image(x, layer, targets, acts, grads), 0)
    compare(f"{method} raw layer map", ours[f"{method}.raw"], raw, rel=1e-4)
    compare(f"{method} image-sized map", ours[f"{method}.maps"], maps, abs_=2e-2)
    cam.activations_and_grads.release()

from captum.attr import LayerGradCam, Saliency  # noqa: E402

if "gradcam" in methods.split(",") and transform is None:
    ref = LayerGradCam(model, layer).attribute(x, target=classes, relu_attributions=True)
    compare("gradcam raw vs captum LayerGradCam", ours["gradcam.raw"], ref.detach()[:, 0], rel=1e-4)
if "saliency" in methods.split(","):
    ref = Saliency(model).attribute(x.clone().requires_grad_(), target=classes, abs=True)
    compare("saliency vs captum Saliency", ours["saliency.raw"], ref.detach(), rel=1e-4)

if "rollout" in methods.split(","):
    attns = []
    for blk in model.blocks:
        a = blk.attn
        def hook(mod, args, out, store=attns):
            h = args[0]
            b, n, d = h.shape
            q, k, _ = mod.qkv(h).reshape(b, n, 3, mod.heads, d // mod.heads).permute(2, 0, 3, 1, 4)
            store.append((q @ k.transpose(-2, -1) * (d // mod.heads) ** -0.5).softmax(-1))
        a.register_forward_hook(hook)
    with torch.no_grad():
        model(x)
    # Abnar & Zuidema 2020, eq. for rollout: A~ = 0.5 W + 0.5 I per layer, heads averaged, multiplied.
    n = attns[0].shape[-1]
    r = torch.eye(n).expand(x.shape[0], n, n)
    for w in attns:
        a = 0.5 * w.mean(1) + 0.5 * torch.eye(n)
        r = (a / a.sum(-1, keepdim=True)) @ r
    g = int(round((n - 1) ** 0.5))
    compare("rollout raw", ours["rollout.raw"], r[:, 0, 1:].reshape(-1, g, g), rel=1e-4)

if failures:
    print("\n".join(failures))
    sys.exit(1)
