"""How main.py sets a run up: its folder, its paths, the settings it shows, its threads, video configs."""
import os
import os.path as osp

import pytest
import yaml

from .helpers import load_default_config, load_main
from .test_baseline_main import tiny_argv


def config(argv):
    main = load_main()
    return main.build_config(main.build_parser().parse_args(argv))


def test_repo_placeholder_resolves_from_any_working_directory(tmp_path, monkeypatch):
    main = load_main()
    monkeypatch.chdir(tmp_path)
    cfg = config(['--config-file', osp.join(main._REPO, 'benchmarks', 'baseline', 'configs', 'demo.yaml')])
    assert cfg.data.root == osp.join(main._REPO, 'reid-data', 'synthetic-demo')
    assert cfg.data.save_dir == osp.join(main._REPO, 'log', 'demo')
    # Paths without the placeholder stay relative to the working directory, as in Torchreid.
    assert config(['data.save_dir', 'log/x']).data.save_dir == 'log/x'


def test_a_new_run_never_mixes_with_an_earlier_one(tmp_path):
    """fault: a second training run into a save dir holding a run -> expected: it writes to <save_dir>-2."""
    main = load_main()
    save_dir = tmp_path / 'log'
    (save_dir / 'model').mkdir(parents=True)
    assert main.choose_save_dir(config(['data.save_dir', str(save_dir)])) == (str(save_dir), None)
    (save_dir / 'model' / 'model.pth.tar-3').write_bytes(b'earlier run')
    (save_dir / 'events.out.tfevents.1.host').write_bytes(b'curves')
    new, note = main.choose_save_dir(config(['data.save_dir', str(save_dir)]))
    assert new == f'{save_dir}-2' and 'train.overwrite' in note
    # Resuming continues in place; test-only writes only time-stamped files: both keep the folder.
    resume = config(['data.save_dir', str(save_dir), 'model.resume', str(save_dir / 'model' / 'model.pth.tar-3')])
    assert main.choose_save_dir(resume)[0] == str(save_dir)
    # train.overwrite removes the earlier checkpoints and curves, nothing else.
    (save_dir / 'train.log-1').write_text('kept')
    same, note = main.choose_save_dir(config(['data.save_dir', str(save_dir), 'train.overwrite', 'True']))
    assert same == str(save_dir) and 'removed the 2' in note
    assert sorted(os.listdir(save_dir)) == ['model', 'train.log-1'] and os.listdir(save_dir / 'model') == []


def test_non_default_settings_are_shown_and_the_full_config_written(tmp_path):
    main = load_main()
    cfg = config(['train.max_epoch', '7', 'model.name', 'osnet_x0_25', 'data.save_dir', str(tmp_path)])
    changed = dict(main.non_default_settings(cfg))
    assert changed == {'model.name': 'osnet_x0_25', 'data.save_dir': str(tmp_path), 'train.max_epoch': 7}
    path = main.write_config(cfg, str(tmp_path))
    with open(path) as f:
        assert yaml.safe_load(f)['train']['max_epoch'] == 7
    again = config(['--config-file', path])  # the written file is a valid config file
    assert again.train.max_epoch == 7 and again.model.name == 'osnet_x0_25'


def test_compute_threads_leave_the_workers_their_cores(monkeypatch):
    main = load_main()
    import torch

    import torchreid.data.datamanager as dm
    monkeypatch.setattr(dm, 'available_cpus', lambda: 4)
    monkeypatch.setattr(torch, 'get_num_threads', lambda: 4)
    assert main.compute_threads(config(['data.workers', '1'])) == 3
    assert main.compute_threads(config(['data.workers', '8'])) == 1   # workers capped at 4: one thread left
    assert main.compute_threads(config(['num_threads', '2'])) == 2    # an explicit value wins


def test_workers_are_capped_at_the_cores(monkeypatch, caplog):
    """fault: data.workers 200 -> expected: at most one loader process per available core, said in the log."""
    import torchreid.data.datamanager as dm
    monkeypatch.setattr(dm, 'available_cpus', lambda: 2)
    with caplog.at_level('INFO', logger='torchreid.data'):
        assert dm.usable_workers(200) == 2
    assert 'more than the 2 CPU cores' in caplog.text
    assert dm.usable_workers(1) == 1
    with pytest.raises(ValueError, match='workers'):
        dm.usable_workers(-1)


def test_video_configuration_builds_the_video_pipeline():
    dc = load_default_config()
    cfg = config(['data.type', 'video', 'data.sources', "['mars']", 'data.targets', "['mars']",
                  'video.seq_len', '4', 'video.pooling_method', 'max', 'loss.name', 'softmax',
                  'sampler.train_sampler', 'RandomSampler'])
    kwargs = dc.videodata_kwargs(cfg)
    assert kwargs['seq_len'] == 4 and kwargs['sources'] == ['mars'] and 'k_tfm' not in kwargs
    with pytest.raises(dc.ConfigError, match='video dataset'):
        config(['data.type', 'video', 'data.sources', "['market1501']"])
    with pytest.raises(dc.ConfigError, match='video.pooling_method'):
        config(['data.type', 'video', 'data.sources', "['mars']", 'data.targets', "['mars']",
                'video.pooling_method', 'median'])


def test_main_trains_into_a_new_folder_the_second_time(tiny_root, tmp_path):
    main = load_main()
    argv = tiny_argv(tiny_root, str(tmp_path / 'log'), 'test.visrank', 'False', 'data.targets',
                     "['soccernetv3']", 'test.export_ranking_results', 'False')
    first = main.main(argv)
    second = main.main(argv)
    assert first['save_dir'] == str(tmp_path / 'log') and second['save_dir'] == str(tmp_path / 'log') + '-2'
    assert osp.isfile(osp.join(second['save_dir'], 'config.yaml'))
    assert first['targets']['soccernetv3']['mAP'] == second['targets']['soccernetv3']['mAP']  # same seed


def test_the_resume_hint_names_the_folder_the_run_chose(tmp_path):
    """An interrupted run that wrote to <save_dir>-2 is resumed there, not in the earlier run's folder."""
    main = load_main()
    chosen = tmp_path / 'log-2'
    (chosen / 'model').mkdir(parents=True)
    (chosen / 'model' / 'model.pth.tar-2').write_bytes(b'x')
    argv = ['data.save_dir', str(tmp_path / 'log'), 'train.max_epoch', '5']
    hint = main.resume_hint(argv, str(chosen))
    command = hint.splitlines()[-1]
    assert 'epoch 2' in hint
    assert f"data.save_dir {chosen}" in command and f"model.resume {chosen / 'model' / 'model.pth.tar-2'}" in command
    assert command.count('data.save_dir') == 1 and 'train.max_epoch 5' in command
    assert 'No checkpoint' in main.resume_hint(argv, str(tmp_path / 'empty'))
