"""The model classes behind the sample checkpoints, one group per story of DESIGN.md.

All are tiny (a few thousand parameters) so the samples stay a few hundred KB in all,
yet each keeps the key structure of the story it stands for. Every model has a forward
that runs on CPU, so verification and speed comparisons can use them.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


# -- Story 1: the attention swap (font-generation UNet) ---------------------------------
class SelfAttention(nn.Module):
    """SAGAN-style attention: query/key/value 1x1 convs and a learned gate ``gamma``."""

    def __init__(self, channels: int):
        super().__init__()
        inner = max(channels // 8, 1)
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)            # b, hw, inner
        k = self.key(x).flatten(2)                              # b, inner, hw
        attn = torch.softmax(q @ k, dim=-1)                     # b, hw, hw
        v = self.value(x).flatten(2)                            # b, c, hw
        out = (v @ attn.transpose(1, 2)).view(b, c, h, w)
        return x + self.gamma * out


class LinearAttention(nn.Module):
    """Linear attention: one fused qkv projection and an output conv (cost linear in hw)."""

    def __init__(self, channels: int, heads: int = 2, dim_head: int = 8):
        super().__init__()
        self.heads = heads
        hidden = heads * dim_head
        self.to_qkv = nn.Conv2d(channels, hidden * 3, 1, bias=False)
        self.to_out = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.to_qkv(x).chunk(3, dim=1)
        q, k, v = (t.reshape(b, self.heads, -1, h * w) for t in (q, k, v))
        k = k.softmax(dim=-1)
        context = torch.einsum("bhdn,bhen->bhde", k, v)
        out = torch.einsum("bhde,bhdn->bhen", context, q).reshape(b, -1, h, w)
        return x + self.to_out(out)


class UnetSkipConnectionBlock(nn.Module):
    """pix2pix's recursive UNet block, with an optional attention on its output."""

    def __init__(self, outer_nc, inner_nc, input_nc=None, submodule=None,
                 outermost=False, innermost=False, attention: str | None = None):
        super().__init__()
        self.outermost = outermost
        input_nc = input_nc or outer_nc
        self.down = nn.Sequential(
            nn.LeakyReLU(0.2), nn.Conv2d(input_nc, inner_nc, 4, 2, 1, bias=False),
            nn.Identity() if outermost or innermost else nn.BatchNorm2d(inner_nc),
        )
        up_in = inner_nc if innermost else inner_nc * 2
        self.submodule = submodule
        self.up = nn.Sequential(
            nn.ReLU(), nn.ConvTranspose2d(up_in, outer_nc, 4, 2, 1, bias=outermost),
            nn.Tanh() if outermost else nn.BatchNorm2d(outer_nc),
        )
        self.attn = {"self": SelfAttention, "linear": LinearAttention, None: None}[attention]
        if self.attn is not None:
            self.attn = self.attn(outer_nc)

    def forward(self, x, style=None):
        y = self.down(x)
        if self.submodule is not None:
            y = self.submodule(y, style)
        elif style is not None:
            y = y + style[:, :, None, None]
        y = self.up(y)
        if self.attn is not None:
            y = self.attn(y)
        return y if self.outermost else torch.cat([x, y], 1)


class FontUNet(nn.Module):
    """Glyph-to-glyph UNet with a style embedding; ``attention`` picks the attention type."""

    def __init__(self, attention: str = "self", ngf: int = 4, num_styles: int = 4, style_dim: int = 8):
        super().__init__()
        self.style_embedding = nn.Embedding(num_styles, style_dim)
        self.style_mod = nn.Linear(style_dim, ngf * 4)
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 4, innermost=True)
        block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block, attention=attention)
        block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block, attention=attention)
        self.model = UnetSkipConnectionBlock(1, ngf, input_nc=1, submodule=block, outermost=True)

    def forward(self, glyph: torch.Tensor, style_ids: torch.Tensor | None = None) -> torch.Tensor:
        if style_ids is None:
            style_ids = torch.zeros(glyph.shape[0], dtype=torch.long, device=glyph.device)
        style = self.style_mod(self.style_embedding(style_ids))
        return self.model(glyph, style)


# -- Story 2: channel expansion (RGB -> RGBA) -------------------------------------------
class ConvNet(nn.Module):
    """A small image classifier; ``in_chans`` is 3 for RGB, 4 for RGBA."""

    def __init__(self, in_chans: int = 3, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


# -- Story 3: fine-tune design (backbone + head; a projector wrapping the classifier) ---
class Classifier(nn.Module):
    """``backbone`` (a Sequential) then ``fc``: load the backbone, grow the head."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(in_chans, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.backbone(x))


class Projector(nn.Module):
    """A contrastive model that holds the classifier as ``classifier`` plus a projection."""

    def __init__(self, num_classes: int = 10, proj_dim: int = 8):
        super().__init__()
        self.classifier = Classifier(num_classes)
        self.projector = nn.Linear(num_classes, proj_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.classifier(x))


# -- Story 4: warm start from another model ---------------------------------------------
class SmallNet(nn.Module):
    """The old model: ``conv1`` ... ``fc`` (10 classes)."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class WarmStartNet(nn.Module):
    """The new model: ``conv1`` is now ``backbone_conv``, and a new 20-class ``new_fc``."""

    def __init__(self, num_classes: int = 20):
        super().__init__()
        self.backbone_conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.new_fc = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.backbone_conv(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.new_fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


# -- Story 5: the silent empty load (weights under 'net', model holds them as attention_map)
class AttentionNet(nn.Module):
    """The pretrained attention-map network (23 state_dict keys)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.conv3 = nn.Conv2d(16, 16, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(16)
        self.att_conv = nn.Conv2d(16, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)))
        return torch.sigmoid(self.att_conv(x))


class AttentionWrapper(nn.Module):
    """The new model: the pretrained net lives at ``self.attention_map``, plus new parts."""

    def __init__(self, num_classes: int = 5):
        super().__init__()
        self.attention_map = AttentionNet()
        self.backbone = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attn = self.attention_map(x)
        feats = F.relu(self.backbone(x)) * attn
        return self.head(F.adaptive_avg_pool2d(feats, 1).flatten(1))
