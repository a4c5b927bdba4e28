"""Models for the speed check's tests: ``Stack(depth)`` does ``depth`` times the work of
one 3x3 conv layer, so a 4x deeper stack is clearly slower on any machine."""
from __future__ import annotations

from torch import nn


class Stack(nn.Module):
    def __init__(self, depth: int = 2, channels: int = 16):
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 3, padding=1)
        self.body = nn.Sequential(*[nn.Conv2d(channels, channels, 3, padding=1) for _ in range(depth)])

    def forward(self, x):
        return self.body(self.stem(x))
