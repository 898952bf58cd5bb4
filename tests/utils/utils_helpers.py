"""Helpers shared by the tests of ``torchreid.utils`` and the export script."""
import torch
import torch.nn as nn


class TinyNet(nn.Module):
    """Conv + BN + pooling: eval-mode output ``[B, channels]`` depends on each image alone; train mode gives
    2-class logits."""

    def __init__(self, channels=6):
        super().__init__()
        self.feature_dim = channels
        self.conv = nn.Conv2d(3, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, 2)

    def forward(self, x):
        f = self.pool(torch.relu(self.bn(self.conv(x)))).flatten(1)
        return self.classifier(f) if self.training else f
