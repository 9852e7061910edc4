"""SearchNet, microvision's searchable family (src/models/searchnet.rs), transcribed to PyTorch
with the same state_dict names: a stem, three stages of basic, bottleneck or inverted-residual
blocks (widths, depths and kernel size from `arch`), global average pool and a linear head."""
from torch import nn

DEFAULT_ARCH = {"widths": [32, 64, 128], "depths": [1, 1, 1], "block": "basic", "kernel": 3}


class _Block(nn.Module):
    def __init__(self, kind, cin, cout, k, stride):
        super().__init__()
        changes = stride != 1 or cin != cout
        if kind == "bottleneck":
            mid = max(cout // 4, 4)
            plan = [(cin, mid, 1, 1, 1), (mid, mid, k, stride, 1), (mid, cout, 1, 1, 1)]
        elif kind == "inverted":
            hidden = cin * 4
            plan = [(cin, hidden, 1, 1, 1), (hidden, hidden, k, stride, hidden), (hidden, cout, 1, 1, 1)]
        else:
            plan = [(cin, cout, k, stride, 1), (cout, cout, k, 1, 1)]
        for i, (a, b, kk, s, g) in enumerate(plan, 1):
            setattr(self, f"conv{i}", nn.Conv2d(a, b, kk, s, kk // 2, groups=g, bias=False))
            setattr(self, f"bn{i}", nn.BatchNorm2d(b))
        self.n = len(plan)
        self.relu6 = kind == "inverted"
        self.residual = not (self.relu6 and changes)
        if self.residual and changes:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        else:
            self.downsample = None

    def forward(self, x):
        act = nn.functional.relu6 if self.relu6 else nn.functional.relu
        y = x
        for i in range(1, self.n + 1):
            y = getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(y))
            if i < self.n:
                y = act(y)
        if self.residual:
            y = y + (self.downsample(x) if self.downsample is not None else x)
        return y if self.relu6 else nn.functional.relu(y)


class _Stem(nn.Module):
    def __init__(self, cin, cout, k):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, 1, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return nn.functional.relu(self.bn(self.conv(x)))


class SearchNet(nn.Module):
    def __init__(self, num_classes=10, in_channels=3, arch=None):
        super().__init__()
        a = {**DEFAULT_ARCH, **(arch or {})}
        w, d, k = a["widths"], a["depths"], a["kernel"]
        self.stem = _Stem(in_channels, w[0], k)
        cin = w[0]
        for s in range(3):
            blocks = []
            for b in range(d[s]):
                blocks.append(_Block(a["block"], cin, w[s], k, 2 if s > 0 and b == 0 else 1))
                cin = w[s]
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(x.mean((2, 3)))
