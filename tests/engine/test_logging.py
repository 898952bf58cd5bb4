"""Run-folder logging (setup_logging), Torchreid's stdout tee and the meters the engine uses."""
import logging
import subprocess
import sys

import pytest

from torchreid.utils import AverageMeter, Logger, MetricMeter, remove_logging, setup_logging


def test_setup_logging_writes_torchreid_records_and_is_idempotent(tmp_path):
    handler = setup_logging(str(tmp_path), 'run.log')
    try:
        assert setup_logging(str(tmp_path), 'run.log') is handler  # no second handler for the same file
        logging.getLogger('torchreid.engine.engine').info('hello from the engine')
        logging.getLogger('somebody.else').warning('not ours')
        handler.flush()
        text = (tmp_path / 'run.log').read_text()
        assert 'hello from the engine' in text and 'not ours' not in text
    finally:
        remove_logging(handler)
    assert handler not in logging.getLogger('torchreid').handlers


def test_logger_tee(tmp_path, capsys):
    path = tmp_path / 'sub' / 'log.txt'
    with Logger(str(path)) as tee:
        tee.write('line\n')
        tee.flush()
    assert path.read_text() == 'line\n'
    assert capsys.readouterr().out == 'line\n'


def test_meters():
    m = AverageMeter()
    m.update(2.0)
    m.update(4.0, n=3)
    assert m.val == 4.0 and m.avg == pytest.approx(3.5)
    mm = MetricMeter()
    mm.update({'loss': 1.0, 'acc': 0.5})
    mm.update({'loss': 3.0, 'acc': 1.0})
    assert mm.averages() == {'loss': 2.0, 'acc': 0.75}
    with pytest.raises(TypeError, match='dict'):
        mm.update(1.0)


def test_utils_namespace_is_lazy_and_complete():
    code = (
        'import sys, torchreid.utils as u\n'
        'assert "torchreid.models" not in sys.modules\n'
        'names = ["set_random_seed", "get_rng_state", "set_rng_state", "mkdir_if_missing", "check_isfile",\n'
        '         "read_image", "collect_env_info", "open_all_layers", "open_specified_layers", "count_num_param",\n'
        '         "resolve_device", "save_checkpoint", "load_checkpoint", "resume_from_checkpoint", "Logger",\n'
        '         "setup_logging", "FeatureExtractor", "visualize_ranked_results", "atomic_write",\n'
        '         "atomic_write_json", "atomic_torch_save"]\n'
        'for n in names: getattr(u, n)\n'
        'assert "torchreid.models" not in sys.modules\n'
        'from torchreid.utils import load_pretrained_weights\n'
        'import torchreid.models\n'
        'assert load_pretrained_weights is torchreid.models.load_pretrained_weights\n'
        'try:\n'
        '    u.no_such_name\n'
        'except AttributeError:\n'
        '    pass\n'
        'else:\n'
        '    raise SystemExit("missing AttributeError")\n'
    )
    subprocess.run([sys.executable, '-c', code], check=True)
