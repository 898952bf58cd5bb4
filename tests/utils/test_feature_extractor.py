import numpy as np
import pytest
import torch
from PIL import Image

from torchreid.utils.feature_extractor import FeatureExtractor
from utils_helpers import TinyNet

H, W = 64, 32


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    paths, arrays = [], []
    for i in range(5):
        arr = rng.integers(0, 256, size=(40 + i, 20 + i, 3), dtype=np.uint8)  # various sizes, all resized
        path = tmp_path / f'img{i}.png'
        Image.fromarray(arr).save(path)
        paths.append(str(path))
        arrays.append(arr)
    return paths, arrays


def _extractor(**kw):
    torch.manual_seed(0)
    kw.setdefault('model', TinyNet())
    return FeatureExtractor(image_size=(H, W), device='cpu', verbose=False, **kw)


def test_all_input_forms_give_the_same_features(images):
    paths, arrays = images
    ext = _extractor(batch_size=2)
    f_paths = ext(paths)
    assert f_paths.shape == (5, 6) and f_paths.device.type == 'cpu' and f_paths.dtype == torch.float32
    f_pil = ext([Image.fromarray(a) for a in arrays])
    f_arr = ext(arrays)
    f_tensor = ext(torch.stack([ext.preprocess(Image.fromarray(a)) for a in arrays]))
    for other in (f_pil, f_arr, f_tensor):
        assert torch.allclose(f_paths, other, atol=1e-6)
    # single items, a 3-D tensor, a tuple
    assert torch.allclose(ext(paths[1]), f_paths[1:2], atol=1e-6)
    assert torch.allclose(ext(Image.fromarray(arrays[2])), f_paths[2:3], atol=1e-6)
    assert torch.allclose(ext(arrays[3]), f_paths[3:4], atol=1e-6)
    assert torch.allclose(ext(ext.preprocess(Image.fromarray(arrays[4]))), f_paths[4:5], atol=1e-6)
    assert torch.allclose(ext(tuple(paths)), f_paths, atol=1e-6)
    # batching does not change the result
    assert torch.allclose(_extractor(batch_size=64)(paths), f_paths, atol=1e-6)
    assert not torch.allclose(f_paths[0], f_paths[1])  # different images differ
    assert ext([]).shape == (0, 6)


def test_preprocessing_is_the_data_manager_test_transform(images):
    from torchreid.data.transforms import build_transforms

    paths, arrays = images
    ext = _extractor()
    _, transform_te = build_transforms(H, W, transforms=None, norm_mean=[0.485, 0.456, 0.406],
                                       norm_std=[0.229, 0.224, 0.225])
    pil = Image.fromarray(arrays[0])
    x = ext.preprocess(pil)
    assert x.shape == (3, H, W)
    assert torch.equal(torch.as_tensor(x), torch.as_tensor(transform_te(pil)))
    raw = _extractor(pixel_norm=False).preprocess(pil)
    assert 0.0 <= float(raw.min()) and float(raw.max()) <= 1.0


def test_model_is_in_eval_mode_and_grad_free(images):
    ext = _extractor()
    assert not ext.model.training
    feats = ext(images[0])
    assert not feats.requires_grad
    feats /= 2  # an ordinary tensor (not an inference tensor): in-place ops work


def test_errors_name_the_problem(images, tmp_path):
    paths, arrays = images
    ext = _extractor()
    with pytest.raises(TypeError, match=r'input\[1\] has unsupported type int'):
        ext([paths[0], 3])
    with pytest.raises(ValueError, match=r'input\[0\].*float64'):
        ext([np.zeros((8, 4, 3))])
    with pytest.raises(ValueError, match=r'\[B, 3, H, W\]'):
        ext(torch.zeros(2, 1, H, W))
    with pytest.raises(TypeError, match='unsupported input type dict'):
        ext({'a': 1})
    with pytest.raises(FileNotFoundError, match='missing.png'):
        ext([str(tmp_path / 'missing.png')])
    with pytest.raises(ValueError, match='model_name'):
        FeatureExtractor(device='cpu')
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        FeatureExtractor(model=TinyNet(), model_path=str(tmp_path / 'nope.pth'), device='cpu')


def test_builds_registered_model_and_loads_weights(images, tmp_path):
    from torchreid.models import build_model

    torch.manual_seed(1)
    trained = build_model('osnet_x0_25', num_classes=4, pretrained=False)
    weights = tmp_path / 'model.pth.tar'
    torch.save({'state_dict': trained.state_dict()}, weights)
    ext = FeatureExtractor('osnet_x0_25', model_path=str(weights), image_size=(H, W), device='cpu',
                           verbose=False, batch_size=3)
    feats = ext(images[0])
    assert feats.shape == (5, trained.feature_dim)
    trained.eval()
    with torch.no_grad():
        expected = trained(torch.stack([ext.preprocess(Image.open(p).convert('RGB')) for p in images[0]]))
    assert torch.allclose(feats, expected, atol=1e-5)


# -- FeatureExtractor.from_checkpoint: a self-describing checkpoint needs nothing else -----------------------

CKPT_MEAN, CKPT_STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]


def _self_describing(tmp_path, num_classes=4, **overrides):
    """``(model in eval mode, checkpoint path)`` for a tiny shufflenet with a BNNeck head and moved weights."""
    import torchreid
    from torchreid.models import build_model, describe_model
    from torchreid.utils.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = build_model('shufflenet_v2_x0_5', num_classes=num_classes, pretrained=False, bnneck=True)
    with torch.no_grad():
        model.train()(torch.randn(4, 3, H, W))  # BN statistics away from their initial values
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    state = {'state_dict': model.state_dict(), 'epoch': 1, 'model_spec': describe_model(model),
             'input_size': [H, W], 'normalization': {'mean': CKPT_MEAN, 'std': CKPT_STD}, 'config': None,
             'torchreid_version': torchreid.__version__}
    state.update(overrides)
    return model.eval(), save_checkpoint(state, str(tmp_path / 'log'))


def test_from_checkpoint_gives_the_original_models_features(images, tmp_path):
    from torchreid.data.transforms import build_transforms

    paths, _ = images
    model, ckpt = _self_describing(tmp_path)
    ext = FeatureExtractor.from_checkpoint(ckpt, device='cpu', batch_size=2, verbose=False)
    assert ext.image_size == (H, W) and ext.batch_size == 2 and not ext.model.training
    assert isinstance(ext.model.bnneck, torch.nn.BatchNorm1d)  # the architecture keywords were restored
    assert ext.model.model_spec == model.model_spec
    _, transform_te = build_transforms(H, W, transforms=None, norm_mean=CKPT_MEAN, norm_std=CKPT_STD)
    batch = torch.stack([transform_te(Image.open(p).convert('RGB')) for p in paths])
    with torch.no_grad():
        expected = model(batch)
    feats = ext(paths)
    assert feats.shape == (5, model.feature_dim)
    assert torch.allclose(feats, expected, atol=1e-6)


def test_from_checkpoint_without_size_or_normalization_warns_and_uses_defaults(tmp_path, caplog):
    import logging

    _, ckpt = _self_describing(tmp_path, input_size=None, normalization=None)
    with caplog.at_level(logging.WARNING, logger='torchreid.utils.feature_extractor'):
        ext = FeatureExtractor.from_checkpoint(ckpt, device='cpu', verbose=False)
    assert ext.image_size == (256, 128)
    assert 'no input_size' in caplog.text and 'no normalization' in caplog.text
    from torchreid.data.transforms import build_transforms

    pil = Image.fromarray(np.zeros((20, 10, 3), dtype=np.uint8))
    _, imagenet = build_transforms(256, 128, transforms=None, norm_mean=[0.485, 0.456, 0.406],
                                   norm_std=[0.229, 0.224, 0.225])
    assert torch.equal(torch.as_tensor(ext.preprocess(pil)), torch.as_tensor(imagenet(pil)))


def test_from_checkpoint_refuses_a_checkpoint_that_does_not_describe_its_model(tmp_path):
    from torchreid.models import CheckpointError
    from torchreid.utils.checkpoint import save_checkpoint

    model, _ = _self_describing(tmp_path)
    old = save_checkpoint({'state_dict': model.state_dict(), 'epoch': 2}, str(tmp_path / 'old'))
    with pytest.raises(CheckpointError, match=r'does not describe its model.*FeatureExtractor\(model_name='):
        FeatureExtractor.from_checkpoint(old, device='cpu')
    with pytest.raises(ValueError, match='does not describe its model'):  # a CheckpointError is a ValueError
        FeatureExtractor.from_checkpoint(old, device='cpu')
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        FeatureExtractor.from_checkpoint(str(tmp_path / 'missing.pth'), device='cpu')


def test_from_checkpoint_loads_strictly(tmp_path):
    from torchreid.models import CheckpointError

    model, _ = _self_describing(tmp_path)
    state_dict = model.state_dict()
    del state_dict['stage2.0.branch1.0.weight']
    _, ckpt = _self_describing(tmp_path / 'broken', state_dict=state_dict)
    with pytest.raises(CheckpointError, match=r"missing key\(s\) 1: 'stage2.0.branch1.0.weight'"):
        FeatureExtractor.from_checkpoint(ckpt, device='cpu')
