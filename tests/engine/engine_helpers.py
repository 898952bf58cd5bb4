"""Helpers for the engine tests: a tiny data manager over the synthetic set and a tiny model."""
import torch
import torch.nn as nn

HEIGHT, WIDTH = 64, 32
TARGETS = ['soccernetv3', 'soccernetv3_test', 'soccernetv3_challenge']


class TinyNet(nn.Module):
    """Follows the model contract (feature_dim, classifier, train/eval outputs) at a fraction of the cost."""

    def __init__(self, num_classes, loss='softmax', feature_dim=16):
        super().__init__()
        self.loss = loss
        self.feature_dim = feature_dim
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
            nn.Conv2d(8, feature_dim, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(feature_dim),
            nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.classifier = nn.Linear(feature_dim, num_classes)

    def forward(self, x):
        f = self.backbone(x)
        if not self.training:
            return f
        logits = self.classifier(f)
        return (logits, f) if self.loss == 'triplet' else logits


def make_datamanager(root, targets=TARGETS, **kwargs):
    from torchreid.data import ImageDataManager

    opts = dict(root=root, sources='soccernetv3', targets=targets, height=HEIGHT, width=WIDTH, workers=0,
                batch_size_train=16, batch_size_test=64, train_sampler='RandomSampler', device='cpu')
    opts.update(kwargs)
    return ImageDataManager(**opts)


def tiny_model(num_classes, loss='softmax', seed=0):
    torch.manual_seed(seed)
    return TinyNet(num_classes, loss=loss)
