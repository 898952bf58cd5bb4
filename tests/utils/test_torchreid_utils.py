"""Torchreid's public ``torchreid.utils`` names: every one importable, and the ones added for compatibility
(compute_model_complexity, read_json/write_json, download_url, listdir_nohidden) checked by hand."""
import json
import logging
import os

import pytest
import torch
from torch import nn

import torchreid.utils as U

# Torchreid 1.4's torchreid.utils star-exports (tools, loggers, avgmeter, reidtools, torchtools) plus
# re_ranking, compute_model_complexity and FeatureExtractor.
TORCHREID_UTILS_NAMES = [
    'mkdir_if_missing', 'check_isfile', 'read_json', 'write_json', 'set_random_seed', 'download_url', 'read_image',
    'collect_env_info', 'listdir_nohidden', 'Logger', 'RankLogger', 'AverageMeter', 'MetricMeter',
    'visualize_ranked_results', 'save_checkpoint', 'load_checkpoint', 'resume_from_checkpoint', 'open_all_layers',
    'open_specified_layers', 'count_num_param', 'load_pretrained_weights', 're_ranking', 'compute_model_complexity',
    'FeatureExtractor',
]


def test_every_torchreid_utils_name_is_exported():
    missing = [name for name in TORCHREID_UTILS_NAMES if not hasattr(U, name)]
    assert missing == []
    assert set(TORCHREID_UTILS_NAMES) <= set(U.__all__)
    namespace = {}
    exec('from torchreid.utils import compute_model_complexity, re_ranking, read_json, write_json', namespace)
    assert callable(namespace['compute_model_complexity'])


def small_net():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))


def test_model_complexity_by_hand(caplog):
    # input 3x8x6. conv: 4x8x6 = 192 outputs x (3*3*3 + 1 bias) = 5376 FLOPs, 112 params; linear: 2 x (4 + 1)
    # = 10 FLOPs, 10 params; BN: 8 params, (2 + 2) x 192 = 768; ReLU 192; max-pool 2x2: (4 - 1) x 48 = 144;
    # adaptive avg-pool 4x3 -> 1: 12 x 4 = 48.
    model = small_net().train()
    assert U.compute_model_complexity(model, (1, 3, 8, 6)) == (130, 5386)
    assert model.training   # mode restored
    with caplog.at_level(logging.INFO, logger='torchreid.utils.model_complexity'):
        params, flops = U.compute_model_complexity(model, (1, 3, 8, 6), verbose=True, only_conv_linear=False)
    assert (params, flops) == (130, 5386 + 768 + 192 + 144 + 48)
    assert 'Conv2d (params=112, flops=5,376)' in caplog.text and 'Total (params=130, flops=6,538)' in caplog.text
    assert 'BatchNorm2d (params=8, flops=768)' in caplog.text


class TwiceAndUnused(nn.Module):
    """A grouped conv called twice, and a classifier the eval-mode forward does not use."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1, groups=2, bias=False)
        self.classifier = nn.Linear(4, 10)

    def forward(self, x):
        y = self.conv(self.conv(x)).mean(dim=(2, 3))
        return self.classifier(y) if self.training else y


def test_model_complexity_counts_calls_groups_and_skips_unused():
    # grouped conv: 3*3*4 per output / 2 groups; 4x5x5 outputs -> 36 * 100 / 2 = 1800 per call, 72 params
    model = TwiceAndUnused()
    assert U.compute_model_complexity(model, (1, 4, 5, 5)) == (144, 3600)
    with pytest.raises(ValueError, match='input_size'):
        U.compute_model_complexity(model, (1, 0, 5, 5))


def test_read_write_json_atomic(tmp_path):
    path = tmp_path / 'sub' / 'a.json'
    U.write_json({'b': [1, 2.5, 'x']}, str(path))   # Torchreid's argument order: (obj, fpath)
    assert U.read_json(str(path)) == {'b': [1, 2.5, 'x']}
    assert path.read_text() == json.dumps({'b': [1, 2.5, 'x']}, indent=4, separators=(',', ': '))
    with pytest.raises(TypeError):
        U.write_json({'bad': object()}, str(path))
    assert U.read_json(str(path)) == {'b': [1, 2.5, 'x']}   # the failed write left the old file
    assert [p.name for p in path.parent.iterdir()] == ['a.json']   # and no temporary file
    (tmp_path / 'broken.json').write_text('{"a": ')
    with pytest.raises(ValueError, match='broken.json.*not valid JSON'):
        U.read_json(str(tmp_path / 'broken.json'))


def test_listdir_nohidden(tmp_path):
    for name in ('b.jpg', '.DS_Store', 'a.jpg', '.hidden_dir'):
        (tmp_path / name).mkdir() if name.endswith('dir') else (tmp_path / name).write_text('')
    assert U.listdir_nohidden(str(tmp_path), sort=True) == ['a.jpg', 'b.jpg']
    assert sorted(U.listdir_nohidden(str(tmp_path))) == ['a.jpg', 'b.jpg']


def test_download_url_file_scheme(tmp_path):
    src = tmp_path / 'src.bin'
    src.write_bytes(os.urandom(3000))
    dst = tmp_path / 'out' / 'dst.bin'
    U.download_url(src.as_uri(), str(dst))
    assert dst.read_bytes() == src.read_bytes()
    with pytest.raises(OSError):
        U.download_url((tmp_path / 'missing.bin').as_uri(), str(tmp_path / 'never.bin'))
    assert not (tmp_path / 'never.bin').exists()


def test_model_complexity_of_a_torchreid_model():
    from torchreid.models import build_model

    model = build_model('resnet18', num_classes=5, loss='softmax', pretrained=False)
    params, flops = U.compute_model_complexity(model, (1, 3, 64, 32))
    # eval mode: the classifier is not used, so the count is the backbone's (+ any head) parameters
    classifier = sum(p.numel() for n, p in model.named_parameters() if n.startswith('classifier'))
    assert 0 < params <= sum(p.numel() for p in model.parameters()) - classifier
    assert flops > 0 and isinstance(flops, int)
    assert torch.is_grad_enabled()
