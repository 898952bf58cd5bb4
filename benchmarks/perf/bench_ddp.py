"""Data-parallel scaling: training images/s and evaluation time, one process vs several (torch.distributed).

CPU (default): 1 process x T threads against T processes x 1 thread (gloo), the same global batch and the same
images, side by side in one run, with the ratios. CUDA (``--device cuda``): 1 GPU against every visible GPU
(NCCL), one process each. Every setup runs in fresh processes (``torch.multiprocessing.spawn``), trains through
``Engine.train`` (P x K sampler sharded across the ranks, DDP) on in-memory random images (no decoding: the
figure is compute and communication), one warm-up epoch then one timed epoch, and times ``Engine.test`` (each
rank extracts its share of query and gallery, rank 0 ranks the gathered features).

    python benchmarks/perf/bench_ddp.py                                  # CPU: 1 x 2 threads vs 2 x 1 thread
    python benchmarks/perf/bench_ddp.py --device cuda --batch-size 256 --height 256 --width 128
"""
import argparse
import json
import os
import socket
import sys
import tempfile
import time
import types

import torch

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..')))


class RandomImages(torch.utils.data.Dataset):
    """``n`` random images of ``n // 4`` identities (4 each), as the data manager's datasets yield them."""
    eval_metric = 'default'
    hidden_labels = False

    def __init__(self, n, height, width, seed, camid=0):
        g = torch.Generator().manual_seed(seed)
        self.imgs = torch.randn(n, 3, height, width, generator=g)
        self.pids = torch.arange(n) // 4
        self.camid = camid
        self.data = [('x', int(p), camid, 0) for p in self.pids]

    def __len__(self):
        return len(self.imgs)

    def __getitem__(self, i):
        return {'img': self.imgs[i], 'pid': self.pids[i], 'camid': self.camid}


def _measure(rank, world, threads, args, out_dir, port):
    import torch.distributed as dist

    from torchreid.data.samplers import RandomIdentitySampler
    from torchreid.engine import ImageSoftmaxEngine
    from torchreid.models import build_model
    from torchreid.utils import set_random_seed

    torch.set_num_threads(threads)
    device = torch.device(args.device if args.device != 'cuda' else f'cuda:{rank}')
    if world > 1:
        os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
        if device.type == 'cuda':
            torch.cuda.set_device(device)
        dist.init_process_group('nccl' if device.type == 'cuda' else 'gloo', rank=rank, world_size=world)
    try:
        set_random_seed(0)
        per_rank = args.batch_size // world
        train = RandomImages(args.batch_size * args.steps, args.height, args.width, seed=1)
        sampler = RandomIdentitySampler(train.data, per_rank, 4, seed=0)
        query = RandomImages(args.num_query, args.height, args.width, seed=2)
        gallery = RandomImages(args.num_gallery, args.height, args.width, seed=3, camid=1)
        loader = torch.utils.data.DataLoader
        dm = types.SimpleNamespace(
            train_loader=loader(train, sampler=sampler, batch_size=per_rank, drop_last=True),
            test_loader={'random': {'query': loader(query, batch_size=args.test_batch_size),
                                    'gallery': loader(gallery, batch_size=args.test_batch_size)}},
            num_train_pids=len(train) // 4, targets=['random'], set_epoch=sampler.set_epoch)
        model = build_model(args.model, num_classes=len(train) // 4, loss='softmax', pretrained=False)
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
        engine = ImageSoftmaxEngine(dm, model, optimizer, device=device, progress=False, tensorboard=False)
        engine._prepare_distributed()
        timings = {}
        for engine.epoch in range(2):  # a warm-up epoch, then the timed one
            _barrier(world, device)
            t0 = time.perf_counter()
            engine.train(print_freq=0)
            _barrier(world, device)
            timings['train_s'] = time.perf_counter() - t0
        steps = len(engine.train_loader)
        engine.test()  # warm-up
        _barrier(world, device)
        t0 = time.perf_counter()
        engine.test()
        _barrier(world, device)
        timings['eval_s'] = time.perf_counter() - t0
        if rank == 0:
            result = dict(world=world, threads=threads, steps=steps, global_batch=per_rank * world,
                          train_img_s=steps * per_rank * world / timings['train_s'], eval_s=timings['eval_s'])
            with open(os.path.join(out_dir, f'{world}x{threads}.json'), 'w') as f:
                json.dump(result, f)
    finally:
        if world > 1:
            dist.destroy_process_group()
    if world > 1:
        from torchreid.utils.distributed import exit_process

        exit_process(0)  # WORLD_SIZE is set: no abort from a gloo thread at interpreter shutdown


def _barrier(world, device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    if world > 1:
        torch.distributed.barrier()


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run_setup(world, threads, args, out_dir):
    import torch.multiprocessing as mp

    mp.spawn(_measure, args=(world, threads, args, out_dir, _free_port()), nprocs=world, join=True)
    with open(os.path.join(out_dir, f'{world}x{threads}.json')) as f:
        return json.load(f)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--processes', type=int, default=None,
                        help='CPU: processes of the parallel setup (default: the cores); CUDA: the GPUs')
    parser.add_argument('--model', default='osnet_x0_25')
    parser.add_argument('--batch-size', type=int, default=32, help='global batch (split across the processes)')
    parser.add_argument('--steps', type=int, default=8, help='optimizer steps per epoch')
    parser.add_argument('--height', type=int, default=128)
    parser.add_argument('--width', type=int, default=64)
    parser.add_argument('--num-query', type=int, default=200)
    parser.add_argument('--num-gallery', type=int, default=800)
    parser.add_argument('--test-batch-size', type=int, default=100)
    args = parser.parse_args(argv)
    if args.device == 'cuda':
        n = args.processes or torch.cuda.device_count()
        setups = [(1, 1), (n, 1)]
        labels = ['1 GPU', f'{n} GPUs (NCCL, 1 process each)']
    else:
        n = args.processes or len(os.sched_getaffinity(0))
        setups = [(1, n), (n, 1), (1, 1)]
        labels = [f'1 process x {n} threads', f'{n} processes x 1 thread (gloo)', '1 process x 1 thread (reference)']
    if args.batch_size % (4 * n):
        parser.error(f'--batch-size must be a multiple of 4 x {n} (K=4 images per identity on every rank)')
    rows = []
    with tempfile.TemporaryDirectory() as out_dir:
        for (world, threads), label in zip(setups, labels):
            if rows and (world, threads) == setups[0]:
                break  # one GPU: nothing to compare with
            rows.append((label, run_setup(world, threads, args, out_dir)))
    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan')
    print(f'{args.model}, {args.height}x{args.width}, global batch {args.batch_size}, {rows[0][1]["steps"]} steps '
          f'timed, eval {args.num_query} query + {args.num_gallery} gallery, torch {torch.__version__}; '
          f'1-min load average at the end {load:.1f} on {len(os.sched_getaffinity(0))} cores')
    print('| setup | train img/s | eval s |')
    print('|---|---|---|')
    for label, r in rows:
        print(f'| {label} | {r["train_img_s"]:.1f} | {r["eval_s"]:.2f} |')
    if len(rows) >= 2:
        base, par = rows[0][1], rows[1][1]
        print(f'scaling: training x{par["train_img_s"] / base["train_img_s"]:.2f}, '
              f'evaluation x{base["eval_s"] / par["eval_s"]:.2f} (parallel vs single; >1 is faster)')
    return rows


if __name__ == '__main__':
    main()
