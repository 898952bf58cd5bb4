#!/usr/bin/env python
"""Training-loader throughput (images/s) on the synthetic 'demo' SoccerNet-v3 set.

Compares workers=0 vs workers=2 and RandomIdentitySampler vs RandomActionSampler, at 256x128 with
random_flip, batch 32, measured side by side in one run. Also times the dataset scan (init).

    python benchmarks/perf/bench_loader.py [--root DIR] [--batches N]
"""
import argparse
import logging
import os
import os.path as osp
import statistics
import sys
import tempfile
import time

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

import torch  # noqa: E402

from torchreid.data import ImageDataManager  # noqa: E402
from torchreid.data.datasets import init_image_dataset  # noqa: E402


def ensure_demo(root):
    if osp.isdir(osp.join(root, 'soccernetv3', 'reid', 'train')):
        return root
    from torchreid.synthetic import generate_dataset
    print(f'generating the demo preset in {root} ...', flush=True)
    generate_dataset(root, preset='demo', seed=0)
    return root


def build(root, sampler, workers, batch_size=32):
    torch.manual_seed(0)
    return ImageDataManager(root=root, sources='soccernetv3', targets='soccernetv3', height=256, width=128,
                            transforms='random_flip', batch_size_train=batch_size, workers=workers,
                            train_sampler=sampler, num_instances=4, device='cpu', download=False)


def measure(dm, batches):
    """Images/s over ``batches`` batches; the first batch (worker start-up, sampler epoch) is not timed."""
    n_images, start, done = 0, None, 0
    it = iter(dm.train_loader)
    while done < batches + 1:
        try:
            batch = next(it)
        except StopIteration:
            it = iter(dm.train_loader)
            continue
        if start is None:
            start = time.perf_counter()
        else:
            n_images += batch['img'].shape[0]
        done += 1
    del it  # shut the workers down before the next configuration runs
    return n_images / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--root', default=osp.join(tempfile.gettempdir(), 'torchreid_bench_demo'))
    parser.add_argument('--batches', type=int, default=30, help='timed batches per configuration and round')
    parser.add_argument('--rounds', type=int, default=3, help='interleaved rounds (the median is reported)')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)  # one intra-op thread per process: workers compare fairly
    root = ensure_demo(osp.abspath(args.root))

    t0 = time.perf_counter()
    ds = init_image_dataset('soccernetv3', root=root, download=False, verbose=False)
    scan_s = time.perf_counter() - t0
    n_files = len(ds.train) + len(ds.query) + len(ds.gallery)

    configs = [(sampler, workers) for sampler in ('RandomIdentitySampler', 'RandomActionSampler')
               for workers in (0, 2)]
    managers = {c: build(root, *c) for c in configs}
    # Interleaved rounds, median per configuration: a shared machine's load drifts during the run.
    results = {c: [] for c in configs}
    for _ in range(args.rounds):
        for c in configs:
            results[c].append(measure(managers[c], args.batches))
    medians = {c: statistics.median(runs) for c, runs in results.items()}
    print(f'\nDataset scan: {n_files} files in {scan_s * 1000:.0f} ms ({n_files / scan_s:,.0f} files/s); '
          f'{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f}; median of {args.rounds} rounds '
          f'x {args.batches} batches of 32 at 256x128\n')
    print('| sampler | workers | images/s (median) | min | max |')
    print('|---|---:|---:|---:|---:|')
    for (sampler, workers), runs in results.items():
        print(f'| {sampler} | {workers} | {medians[(sampler, workers)]:,.0f} | {min(runs):,.0f} | {max(runs):,.0f} |')
    print()
    for sampler in ('RandomIdentitySampler', 'RandomActionSampler'):
        print(f'{sampler}: workers=2 / workers=0 = {medians[(sampler, 2)] / medians[(sampler, 0)]:.2f}x')
    print(f'workers=0: RandomActionSampler / RandomIdentitySampler = '
          f'{medians[("RandomActionSampler", 0)] / medians[("RandomIdentitySampler", 0)]:.2f}x')


if __name__ == '__main__':
    main()
