"""Engine options (torchreid/engine/options.py): each option checked once, with its name."""
import pytest
import torch

from engine_helpers import tiny_model
from torchreid.engine import EvalOptions, ImageSoftmaxEngine


def test_eval_options_validation():
    with pytest.raises(ValueError, match='dist_metric'):
        EvalOptions(dist_metric='manhattan')
    with pytest.raises(ValueError, match='ranks'):
        EvalOptions(ranks=[0, 1])
    with pytest.raises(ValueError, match='eval_metric'):
        EvalOptions(eval_metric='market')
    for bad in (0, -0.5, float('nan'), float('inf')):
        with pytest.raises(ValueError, match='inverted_softmax_temperature'):
            EvalOptions(inverted_softmax_temperature=bad)
    assert EvalOptions(ranks=5).ranks == (5,)


def test_train_options_are_checked_once_with_their_names(dm_valid, tmp_path):
    from torchreid.engine import TrainOptions

    assert TrainOptions(checkpoint_metric='rank-1').checkpoint_metric == 'rank1'
    for bad, msg in [({'max_epoch': -1}, 'max_epoch'), ({'save_freq': 0}, 'save_freq'),
                     ({'keep_last': 0}, 'keep_last'), ({'eval_freq': 1.5}, 'eval_freq'),
                     ({'checkpoint_metric': 'acc'}, 'checkpoint_metric')]:
        with pytest.raises(ValueError, match=msg):
            TrainOptions(**bad)
    model = tiny_model(dm_valid.num_train_pids)
    engine = ImageSoftmaxEngine(dm_valid, model, torch.optim.Adam(model.parameters()), device='cpu', progress=False)
    with pytest.raises(TypeError, match="'rerank_k'.*did you mean"):
        engine.run(save_dir=str(tmp_path), max_epoch=1, rerank_k=3)
