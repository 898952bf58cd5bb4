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


class ToyImages(torch.utils.data.Dataset):
    """In-memory random images of ``n // 4`` identities, as the data manager's datasets give them (no decoding:
    for tests about the loop, not the data)."""
    eval_metric = 'default'
    hidden_labels = False

    def __init__(self, n, seed, num_pids=4, camid=0):
        g = torch.Generator().manual_seed(seed)
        self.imgs = torch.randn(n, 3, 8, 4, generator=g)
        self.pids = torch.arange(n) % num_pids
        self.camid = camid
        self.data = [('x', int(p), camid, 0) for p in self.pids]

    def __len__(self):
        return len(self.imgs)

    def __getitem__(self, i):
        return {'img': self.imgs[i], 'pid': self.pids[i], 'camid': self.camid}


def toy_engine(lr=1e-2, engine_cls=None, scheduler=True, **kwargs):
    """A seeded softmax engine over :class:`ToyImages` (one 'default'-metric target 'toy'): a few ms an epoch."""
    import types

    from torch.utils.data import DataLoader

    from torchreid.engine import ImageSoftmaxEngine
    from torchreid.utils import set_random_seed

    set_random_seed(0)
    dm = types.SimpleNamespace(train_loader=DataLoader(ToyImages(32, 1), batch_size=8, shuffle=True),
                               test_loader={'toy': {'query': DataLoader(ToyImages(4, 2)),
                                                    'gallery': DataLoader(ToyImages(8, 3, camid=1))}},
                               num_train_pids=4, targets=['toy'])
    model = nn.Sequential(nn.Flatten(), nn.Linear(96, 6), nn.ReLU(), nn.Linear(6, 4))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5) if scheduler else None
    opts = dict(device='cpu', progress=False, tensorboard=False)
    opts.update(kwargs)
    return (engine_cls or ImageSoftmaxEngine)(dm, model, optimizer, scheduler=sched, **opts)
