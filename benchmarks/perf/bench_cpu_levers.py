"""The glibc malloc lever on CPU: feature extraction (and optionally training) img/s, page faults and peak RSS
with glibc's default allocator thresholds vs raised ones, each setting in a fresh subprocess (the page-fault
behaviour is that of a new process, as in a real run).

Settings (ratios are against ``default``):

* ``default``: glibc's defaults.
* ``env-at-runtime``: ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` put in ``os.environ`` by the
  running process (before torch is imported), as a library could do. glibc reads them only at process start,
  so this should measure like ``default``.
* ``env-at-launch``: the same variables in the environment the process is started with (the shell way).
* ``mallopt``: :func:`torchreid.utils.cpu.tune_malloc` (``mallopt`` at run time, the library way).
* ``fork+env`` / ``fork+mallopt``: the process sets the variables in ``os.environ`` / calls ``tune_malloc``,
  then forks a child (as a DataLoader starts its workers) and the child measures: does the setting reach
  forked workers?
* ``mallopt-1g``: ``mallopt`` with 1 GiB thresholds (how much more a larger setting buys, and what it costs
  in peak RSS).

Random tensors through the engine's extraction (``Engine.extract_features_from_loader``, inference mode),
median of the timed batches; ``CPU ms/img`` (user + kernel) and ``kernel ms/img``: the process's CPU time per
image over the timed batches (less disturbed than wall time by other processes on a shared machine);
``faults/img``: minor page faults per image; ``peak RSS``: the measuring process's maximum resident set
(``ru_maxrss``). Settings are interleaved over
``--repeats`` rounds so a busy machine hits all of them alike; the table gives the median and the range.

    python benchmarks/perf/bench_cpu_levers.py                      # resnet50_fc512 + osnet_x1_0, batch 8
    python benchmarks/perf/bench_cpu_levers.py --train --repeats 3 --settings default mallopt
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import types

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, REPO)

from torchreid.utils.cpu import (DEFAULT_MMAP_THRESHOLD, DEFAULT_TRIM_THRESHOLD, OPT_OUT_ENV_VAR,  # noqa: E402
                                 tune_malloc)

SETTINGS = ('default', 'env-at-runtime', 'env-at-launch', 'mallopt', 'fork+env', 'fork+mallopt', 'mallopt-1g')
MALLOC_ENV = {'MALLOC_MMAP_THRESHOLD_': str(DEFAULT_MMAP_THRESHOLD),
              'MALLOC_TRIM_THRESHOLD_': str(DEFAULT_TRIM_THRESHOLD)}


def _usage():
    """(minor page faults, CPU seconds in user + kernel mode, kernel-mode seconds) of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_minflt, usage.ru_utime + usage.ru_stime, usage.ru_stime


def measure(args) -> dict:
    """Build the model and time extraction (and training with ``--train``) in this process."""
    import torch

    from torchreid.engine import ImageSoftmaxEngine
    from torchreid.models import build_model

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    num_classes = 100
    model = build_model(args.model, num_classes=num_classes, loss='softmax', pretrained=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    datamanager = types.SimpleNamespace(num_train_pids=num_classes, train_loader=None, test_loader=None)
    engine = ImageSoftmaxEngine(datamanager, model, optimizer, device='cpu', progress=False, tensorboard=False)
    batch = {'img': torch.randn(args.batch_size, 3, args.height, args.width),
             'pid': torch.randint(0, num_classes, (args.batch_size,)),
             'camid': torch.zeros(args.batch_size, dtype=torch.long)}

    def timed(step):
        for _ in range(args.warmup):
            step()
        times, before = [], _usage()
        for _ in range(args.iters):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        faults, cpu_s, sys_s = (b - a for a, b in zip(before, _usage()))
        n_images = args.iters * args.batch_size
        return {'ips': args.batch_size / statistics.median(times), 'faults': faults / n_images,
                'cpu_ms': 1000 * cpu_s / n_images, 'sys_ms': 1000 * sys_s / n_images}

    result = {f'extract_{k}': v for k, v in timed(lambda: engine.extract_features_from_loader([batch])).items()}
    if args.train:
        engine.set_model_mode('train')
        result.update({f'train_{k}': v for k, v in timed(lambda: engine.forward_backward(batch)).items()})
    result['peak_rss_mib'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def worker(args) -> None:
    """One setting in this fresh process: apply it, measure (here or in a forked child), print one JSON line."""
    setting = args.worker
    if setting in ('env-at-runtime', 'fork+env'):
        os.environ.update(MALLOC_ENV)
    elif setting in ('mallopt', 'fork+mallopt'):
        if not tune_malloc(respect_environment=False):
            raise SystemExit('tune_malloc did not apply (not glibc?)')
    elif setting == 'mallopt-1g':
        if not tune_malloc(1 << 30, 1 << 30, respect_environment=False):
            raise SystemExit('tune_malloc did not apply (not glibc?)')
    if not setting.startswith('fork+'):
        print(json.dumps(measure(args)), flush=True)
        return
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child measures and reports through the pipe
        os.close(read_fd)
        try:
            os.write(write_fd, json.dumps(measure(args)).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        payload = pipe.read()
    os.waitpid(pid, 0)
    print(payload, flush=True)


def run_setting(setting: str, model: str, args) -> dict:
    env = dict(os.environ)
    for name in MALLOC_ENV:
        env.pop(name, None)
    # The engine tunes malloc itself on CPU: off here, so 'default' is glibc's default (the mallopt settings call
    # tune_malloc with respect_environment=False).
    env[OPT_OUT_ENV_VAR] = '0'
    if setting == 'env-at-launch':
        env.update(MALLOC_ENV)
    cmd = [sys.executable, os.path.abspath(__file__), '--worker', setting, '--models', model,
           '--batch-size', str(args.batch_size), '--height', str(args.height), '--width', str(args.width),
           '--warmup', str(args.warmup), '--iters', str(args.iters), '--threads', str(args.threads or 0)]
    if args.train:
        cmd.append('--train')
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f'{setting} / {model} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _spread(values, fmt='{:.1f}'):
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', nargs='+', default=['resnet50_fc512', 'osnet_x1_0'])
    parser.add_argument('--settings', nargs='+', default=list(SETTINGS), choices=SETTINGS)
    parser.add_argument('--repeats', type=int, default=2, help='rounds over all settings (interleaved)')
    parser.add_argument('--train', action='store_true', help='also time a training step (forward_backward)')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--height', type=int, default=256)
    parser.add_argument('--width', type=int, default=128)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--iters', type=int, default=4)
    parser.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: torch default)')
    parser.add_argument('--worker', choices=SETTINGS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        args.model = args.models[0]
        worker(args)
        return
    if 'default' not in args.settings:
        args.settings = ['default'] + args.settings  # the ratios need the reference

    results = {(m, s): [] for m in args.models for s in args.settings}
    for round_idx in range(args.repeats):
        for model in args.models:
            for setting in args.settings:
                res = run_setting(setting, model, args)
                results[(model, setting)].append(res)
                print(f'# round {round_idx + 1} {model} {setting}: ' + ', '.join(
                    f'{k} {v:.1f}' for k, v in res.items()), file=sys.stderr, flush=True)

    import torch
    print(f'\nglibc malloc thresholds on CPU (torch {torch.__version__}, {args.threads or torch.get_num_threads()} '
          f'threads), batch {args.batch_size}, {args.height}x{args.width}, {args.warmup} warm-up + {args.iters} '
          f'timed batches per fresh process, {args.repeats} interleaved round(s): median (min-max); tuned = '
          f'{DEFAULT_MMAP_THRESHOLD >> 20} MiB mmap / {DEFAULT_TRIM_THRESHOLD >> 20} MiB trim threshold\n')
    cols = ['extract img/s', 'vs default', 'CPU ms/img', 'vs default', 'kernel ms/img', 'faults/img']
    if args.train:
        cols += ['train img/s', 'vs default', 'CPU ms/img', 'vs default', 'kernel ms/img', 'faults/img']
    cols.append('peak RSS MiB')
    print('| model | setting | ' + ' | '.join(cols) + ' |')
    print('|---|---|' + '---:|' * len(cols))
    for model in args.models:
        ref = results[(model, 'default')]
        for setting in args.settings:
            runs = results[(model, setting)]
            cells = []
            for key in (('extract',) + (('train',) if args.train else ())):
                ips = [r[f'{key}_ips'] for r in runs]
                ratio = statistics.median(ips) / statistics.median([r[f'{key}_ips'] for r in ref])
                cpu_ms = [r[f'{key}_cpu_ms'] for r in runs]
                # CPU time per image: less sensitive than wall time to other processes on a shared machine;
                # the ratio is default / setting, so above 1x is faster as for img/s
                cpu_ratio = statistics.median([r[f'{key}_cpu_ms'] for r in ref]) / statistics.median(cpu_ms)
                cells += [_spread(ips), f'{ratio:.2f}x', _spread(cpu_ms, '{:.0f}'), f'{cpu_ratio:.2f}x',
                          _spread([r[f'{key}_sys_ms'] for r in runs], '{:.1f}'),
                          _spread([r[f'{key}_faults'] for r in runs], '{:.0f}')]
            cells.append(_spread([r['peak_rss_mib'] for r in runs], '{:.0f}'))
            print(f'| {model} | {setting} | ' + ' | '.join(cells) + ' |')


if __name__ == '__main__':
    main()
