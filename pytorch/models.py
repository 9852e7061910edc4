"""PyTorch transcriptions of microvision's registered models, used as oracles.

Each builder returns an `nn.Module` whose `state_dict` has exactly the key names and shapes of
the Rust model, so weights move between the two with `load_state_dict(strict=True)`.
"""
import torch
from torch import nn


def simple_cnn(num_classes=10, in_channels=3, dropout=0.5, input_size=32):
    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]

    class SimpleCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(*block(in_channels, 32), *block(32, 64), *block(64, 128))
            self.classifier = nn.Sequential(
                # three 2x2 poolings: (input_size // 8)^2 positions of 128 channels (2048 at 32x32)
                nn.Linear(128 * (input_size // 8) ** 2, 512), nn.ReLU(), nn.Dropout(dropout), nn.Linear(512, num_classes)
            )

        def forward(self, x):
            return self.classifier(self.features(x).flatten(1))

    return SimpleCNN()


class _Unit(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


class ImprovedCNN(nn.Module):
    def __init__(self, num_classes=10, in_channels=3):
        super().__init__()
        plan = [(64, 2), (128, 2), (256, 2), (512, 1)]
        cin = in_channels
        for s, (width, units) in enumerate(plan):
            layers = []
            for _ in range(units):
                layers.append(_Unit(cin, width))
                cin = width
            setattr(self, f"stage{s}", nn.Sequential(*layers))
        self.head = nn.Linear(cin, num_classes)
        self.n_stages = len(plan)

    def forward(self, x):
        for s in range(self.n_stages):
            x = getattr(self, f"stage{s}")(x)
            if s < self.n_stages - 1:
                x = nn.functional.max_pool2d(x, 2)
        return self.head(x.amax(dim=(2, 3)))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    """torchvision's ResNet with the CIFAR stem: 3x3 stride-1 conv1, no max-pool."""

    def __init__(self, depths, num_classes=10, in_channels=3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for s, (depth, width) in enumerate(zip(depths, [64, 128, 256, 512])):
            blocks = []
            for b in range(depth):
                blocks.append(BasicBlock(cin, width, 2 if s > 0 and b == 0 else 1))
                cin = width
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(x.mean(dim=(2, 3)))


VGG_PLANS = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}


class VGG(nn.Module):
    def __init__(self, plan, num_classes=10, in_channels=3):
        super().__init__()
        layers, cin = [], in_channels
        for v in plan:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU()]
                cin = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x).mean(dim=(2, 3)))


def build(name, num_classes=10, in_channels=3, input_size=32):
    if name == "simple_cnn":
        return simple_cnn(num_classes, in_channels, input_size=input_size)
    if name == "improved_cnn":
        return ImprovedCNN(num_classes, in_channels)
    if name == "resnet18":
        return ResNet([2, 2, 2, 2], num_classes, in_channels)
    if name == "resnet34":
        return ResNet([3, 4, 6, 3], num_classes, in_channels)
    if name in VGG_PLANS:
        return VGG(VGG_PLANS[name], num_classes, in_channels)
    raise SystemExit(f"unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}")


class _ConvBn(nn.Sequential):
    def __init__(self, cin, cout, k, stride=1, groups=1, act=True):
        layers = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        if act:
            layers.append(nn.SiLU())
        super().__init__(*layers)


class _SE(nn.Module):
    def __init__(self, ch, squeeze):
        super().__init__()
        self.fc1 = nn.Conv2d(ch, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, ch, 1)

    def forward(self, x):
        s = x.mean(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(nn.functional.silu(self.fc1(s))))


class _MBConv(nn.Module):
    def __init__(self, cin, cout, expand, k, stride, drop):
        super().__init__()
        mid = cin * expand
        layers = [] if expand == 1 else [_ConvBn(cin, mid, 1)]
        layers += [_ConvBn(mid, mid, k, stride, groups=mid), _SE(mid, max(1, cin // 4)), _ConvBn(mid, cout, 1, act=False)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout
        self.drop = drop

    def forward(self, x):
        y = self.block(x)
        if not self.residual:
            return y
        if self.training and self.drop > 0:
            keep = (torch.rand(y.shape[0], 1, 1, 1) >= self.drop).to(y.dtype)
            y = y * keep / (1 - self.drop)
        return y + x


class EfficientNetB0(nn.Module):
    """torchvision's efficientnet_b0 layout, with stride 1 in the stem and in stage 2 (32x32 inputs)."""

    STAGES = [(1, 3, 1, 16, 1), (6, 3, 1, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
              (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]

    def __init__(self, num_classes=10, in_channels=3, stochastic_depth=0.2):
        super().__init__()
        feats = [_ConvBn(in_channels, 32, 3, 1)]
        total, idx, cin = sum(s[4] for s in self.STAGES), 0, 32
        for expand, k, stride, cout, reps in self.STAGES:
            blocks = []
            for r in range(reps):
                blocks.append(_MBConv(cin, cout, expand, k, stride if r == 0 else 1, stochastic_depth * idx / total))
                cin, idx = cout, idx + 1
            feats.append(nn.Sequential(*blocks))
        feats.append(_ConvBn(cin, 1280, 1))
        self.features = nn.Sequential(*feats)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x).mean(dim=(2, 3)))


class _AirBN(nn.BatchNorm2d):
    """airbench's BatchNorm: eps 1e-12, momentum 0.4 (PyTorch convention), scale fixed at 1."""

    def __init__(self, c):
        super().__init__(c, eps=1e-12, momentum=0.4)
        self.weight.requires_grad = False


class _AirGroup(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.norm1 = _AirBN(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.norm2 = _AirBN(cout)
        for conv in (self.conv1, self.conv2):
            w = conv.weight.data
            nn.init.dirac_(w[: w.size(1)])

    def forward(self, x):
        x = nn.functional.gelu(self.norm1(nn.functional.max_pool2d(self.conv1(x), 2)))
        return nn.functional.gelu(self.norm2(self.conv2(x)))


class Airbench94(nn.Module):
    """airbench94 (Jordan 2024, arXiv 2404.00498) with microvision's key names."""

    def __init__(self, num_classes=10, in_channels=3):
        super().__init__()
        width = 2 * in_channels * 4
        self.whiten = nn.Conv2d(in_channels, width, 2, padding=0, bias=True)
        self.whiten.weight.requires_grad = False
        nn.init.zeros_(self.whiten.bias)
        self.block1, self.block2, self.block3 = _AirGroup(width, 64), _AirGroup(64, 256), _AirGroup(256, 256)
        self.head = nn.Linear(256, num_classes, bias=False)

    def forward(self, x):
        x = nn.functional.gelu(self.whiten(x))
        x = self.block3(self.block2(self.block1(x)))
        return self.head(x.amax(dim=(2, 3))) / 9


class _VitAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(0.0)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1) * (d // self.heads) ** -0.5).softmax(-1)
        return self.proj_drop(self.proj((attn @ v).transpose(1, 2).reshape(b, n, d)))


class _VitMlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(nn.functional.gelu(self.fc1(x)))


class _VitBlock(nn.Module):
    def __init__(self, dim, heads, mlp_ratio):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), _VitAttention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim), _VitMlp(dim, mlp_ratio * dim)
        self.drop = 0.0  # stochastic depth (0 in the oracles)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VitLite(nn.Module):
    """ViT-Lite-7/4 (Hassani et al. 2021, arXiv 2104.05704) with microvision's key names."""

    def __init__(self, num_classes=10, in_channels=3, input_size=32, dim=256, depth=7, heads=4, mlp_ratio=2):
        super().__init__()
        grid = input_size // 4
        self.patch_embed = nn.Conv2d(in_channels, dim, 4, stride=4)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, dim))
        self.blocks = nn.Sequential(*[_VitBlock(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), tokens], 1) + self.pos_embed
        return self.head(self.norm(self.blocks(x))[:, 0])


_build_base = build


def build(name, num_classes=10, in_channels=3, arch=None, input_size=32):  # noqa: F811
    if name == "searchnet":
        from searchnet import SearchNet

        return SearchNet(num_classes, in_channels, arch)
    if name == "efficientnet_b0":
        return EfficientNetB0(num_classes, in_channels)
    if name == "airbench94":
        return Airbench94(num_classes, in_channels)
    if name == "vit_lite7":
        return VitLite(num_classes, in_channels, input_size)
    return _build_base(name, num_classes, in_channels, input_size)


MODEL_NAMES = ["simple_cnn", "improved_cnn", "resnet18", "resnet34", *VGG_PLANS, "efficientnet_b0", "airbench94", "searchnet", "vit_lite7"]
