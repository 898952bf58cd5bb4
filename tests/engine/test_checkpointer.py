"""The Checkpointer (torchreid/engine/checkpointer.py): retention and self-describing checkpoints."""
import os

import torch

from engine_helpers import tiny_model
from test_training import scripted_test
from torchreid.engine import ImageSoftmaxEngine
from torchreid.utils import load_checkpoint, set_random_seed


def test_keep_last_and_save_freq(dm_valid, tmp_path):
    model = tiny_model(dm_valid.num_train_pids)
    engine = ImageSoftmaxEngine(dm_valid, model, torch.optim.Adam(model.parameters(), lr=1e-3), device='cpu',
                                progress=False, tensorboard=False)
    engine.test = scripted_test(engine, [0.1])  # evaluation is not what this test is about
    engine.run(save_dir=str(tmp_path), max_epoch=3, save_freq=2, keep_last=1, print_freq=100)
    names = sorted(os.listdir(tmp_path / 'model'))
    # epoch 2 (save_freq) was written then removed by keep_last; epoch 3 is the last; best from epoch 3.
    assert names == ['model-best.pth.tar', 'model.pth.tar-3']


def test_default_retention_keeps_the_best_and_the_last_three(dm_valid, tmp_path):
    model = tiny_model(dm_valid.num_train_pids)
    engine = ImageSoftmaxEngine(dm_valid, model, torch.optim.Adam(model.parameters(), lr=1e-3), device='cpu',
                                progress=False, tensorboard=False)
    engine.test = scripted_test(engine, [0.1, 0.9, 0.2, 0.3, 0.4, 0.5])
    engine.run(save_dir=str(tmp_path), max_epoch=6, eval_freq=1, print_freq=100)
    names = sorted(os.listdir(tmp_path / 'model'))
    assert names == ['model-best.pth.tar', 'model.pth.tar-4', 'model.pth.tar-5', 'model.pth.tar-6']
    assert load_checkpoint(str(tmp_path / 'model' / 'model-best.pth.tar'))['epoch'] == 2


def test_checkpoints_describe_themselves(dm_valid, tmp_path):
    import torchreid
    from torchreid.utils import FeatureExtractor

    set_random_seed(0)
    model = torchreid.models.build_model('osnet_x0_25', dm_valid.num_train_pids, loss='softmax', pretrained=False,
                                         bnneck=True)
    engine = ImageSoftmaxEngine(dm_valid, model, torch.optim.Adam(model.parameters(), lr=1e-3), device='cpu',
                                progress=False, tensorboard=False)
    config = {'model': {'name': 'osnet_x0_25', 'bnneck': True}, 'train': {'seed': 0}}
    engine.run(save_dir=str(tmp_path), max_epoch=1, print_freq=100, config=config)
    path = str(tmp_path / 'model' / 'model.pth.tar-1')
    ckpt = load_checkpoint(path)
    assert ckpt['model_spec'] == {'name': 'osnet_x0_25', 'num_classes': dm_valid.num_train_pids, 'loss': 'softmax',
                                  'kwargs': {'bnneck': True}}
    assert ckpt['input_size'] == [dm_valid.height, dm_valid.width]
    assert ckpt['normalization'] == {'mean': dm_valid.norm_mean, 'std': dm_valid.norm_std}
    assert ckpt['config'] == config and ckpt['torchreid_version'] == torchreid.__version__
    # ... so nothing else is needed to extract the engine's features again
    extractor = FeatureExtractor.from_checkpoint(path, device='cpu', verbose=False)
    loader = dm_valid.test_loader['soccernetv3']['query']
    feats, _, _ = engine.extract_features_from_loader(loader)
    torch.testing.assert_close(extractor([r[0] for r in loader.dataset.data]), feats, atol=1e-5, rtol=1e-5)


def test_wrapped_models_are_saved_bare(dm_valid, tmp_path):
    """DataParallel and torch.compile wrappers add key prefixes; the checkpoint holds the bare model's weights,
    so it rebuilds and loads without them."""
    import torchreid

    model = torchreid.models.build_model('osnet_x0_25', dm_valid.num_train_pids, pretrained=False)
    wrapped = torch.compile(torch.nn.DataParallel(model))      # compiled lazily: nothing is compiled here
    engine = ImageSoftmaxEngine(dm_valid, wrapped, torch.optim.Adam(model.parameters()), device='cpu',
                                progress=False, tensorboard=False)
    paths = engine.save_model(0, save_dir=str(tmp_path))
    ckpt = load_checkpoint(paths['model'])
    assert set(ckpt['state_dict']) == set(model.state_dict())
    assert ckpt['model_spec']['name'] == 'osnet_x0_25'
    rebuilt = torchreid.models.build_model_from_checkpoint(paths['model'])
    for key, value in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value)
    engine.resume(paths['model'])                              # back into the wrapped model
