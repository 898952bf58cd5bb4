"""Training and feature-extraction throughput of the engine: fp32 vs bf16 autocast vs channels-last.

Measures images/s of ``ImageSoftmaxEngine.forward_backward`` (forward, label-smoothed cross entropy,
backward, Adam step) and of ``Engine.extract_features`` (inference mode) on random tensors, so data loading
is not part of the figure. Every mode runs side by side in one process; ratios are against fp32.

On a CPU with native bf16 (``avx512_bf16`` / ``amx_bf16``, :func:`torchreid.utils.cpu.native_bf16`; the
header says which) bf16 autocast is faster than fp32; without it (e.g. an AVX2 machine) bf16 is emulated and
much slower than fp32 (figures: docs/results.md): a configuration whose first call takes longer than
``--max-seconds`` is timed on that single call (marked ``*`` in the table) instead of a warm-up plus timed
calls, so the default run takes about 3 minutes on a 2-core AVX2 machine; ``--modes fp32 channels_last``
skips the bf16 rows.

    python benchmarks/perf/bench_train.py                       # CPU, batch 8, 256x128
    python benchmarks/perf/bench_train.py --device cuda --batch-size 64 --modes fp32 bf16 fp16 channels_last bf16+cl
"""
import argparse
import os
import statistics
import sys
import time
import types

import torch

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..')))

from torchreid.engine import ImageSoftmaxEngine  # noqa: E402
from torchreid.models import build_model  # noqa: E402
from torchreid.utils.cpu import BF16_FLAGS, cpu_flags, native_bf16  # noqa: E402

MODES = {
    'fp32': dict(mixed_precision=None, channels_last=False),
    'bf16': dict(mixed_precision='bf16', channels_last=False),
    'fp16': dict(mixed_precision='fp16', channels_last=False),
    'channels_last': dict(mixed_precision=None, channels_last=True),
    'bf16+cl': dict(mixed_precision='bf16', channels_last=True),
}


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def bench_one(model_name, mode, args, num_classes=100):
    torch.manual_seed(0)
    model = build_model(model_name, num_classes=num_classes, loss='softmax', pretrained=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    datamanager = types.SimpleNamespace(num_train_pids=num_classes, train_loader=None, test_loader=None)
    engine = ImageSoftmaxEngine(datamanager, model, optimizer, device=args.device, progress=False,
                                tensorboard=False, **MODES[mode])
    device = engine.device
    batch = {
        'img': torch.randn(args.batch_size, 3, args.height, args.width),
        'pid': torch.randint(0, num_classes, (args.batch_size,)),
        'camid': torch.zeros(args.batch_size, dtype=torch.long),
    }

    def timed(step, n_images):
        """``(images/s, single)``: images/s from the median time of up to ``args.iters`` calls after
        ``args.warmup`` warm-up calls (the median resists the stalls of a shared machine); timing stops early
        once ``args.max_seconds`` have passed, after at least one timed call. A configuration whose first
        warm-up call alone takes longer than ``args.max_seconds`` (bf16 emulated on a CPU without native
        bf16: 12-50x slower) is not called again: that call is the figure (``single=True``); it includes the
        one-time costs, which are small next to such a call."""
        for i in range(args.warmup):
            t0 = time.perf_counter()
            step()
            _sync(device)
            elapsed = time.perf_counter() - t0
            if i == 0 and elapsed > args.max_seconds:
                return n_images / elapsed, True
        times, start = [], time.perf_counter()
        while len(times) < args.iters:
            t0 = time.perf_counter()
            step()
            _sync(device)
            times.append(time.perf_counter() - t0)
            if time.perf_counter() - start > args.max_seconds:
                break
        return n_images / statistics.median(times), False

    engine.set_model_mode('train')
    train = timed(lambda: engine.forward_backward(batch), args.batch_size)
    # one batch through the engine's loader-level extraction (eval mode, inference mode, autocast as configured)
    extract = timed(lambda: engine.extract_features_from_loader([batch]), args.batch_size)
    return train, extract, str(device)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', default='cpu', help="'cpu', 'cuda', 'cuda:1', 'mps'")
    parser.add_argument('--models', nargs='+', default=['resnet50_fc512', 'osnet_x1_0'])
    parser.add_argument('--modes', nargs='+', default=['fp32', 'bf16', 'channels_last'], choices=sorted(MODES))
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--height', type=int, default=256)
    parser.add_argument('--width', type=int, default=128)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--iters', type=int, default=3)
    parser.add_argument('--max-seconds', type=float, default=10.0,
                        help='stop timing a configuration after this long (at least one timed iteration)')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch default)')
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if 'fp32' not in args.modes:
        args.modes = ['fp32'] + args.modes  # the ratios need the fp32 reference

    # One-time costs of the process (kernel selection, allocator growth) must not land on the first row.
    bench_one(args.models[0], 'fp32', argparse.Namespace(**{**vars(args), 'iters': 1, 'warmup': 1}))

    rows = []
    for model_name in args.models:
        ref = None
        for mode in args.modes:
            (train_ips, train_single), (extract_ips, extract_single), device = bench_one(model_name, mode, args)
            if mode == 'fp32':
                ref = (train_ips, extract_ips)
            rows.append((model_name, mode, train_ips, train_single, train_ips / ref[0], extract_ips, extract_single,
                         extract_ips / ref[1]))
            print(f'# {model_name} {mode}: train {train_ips:.1f} img/s, extract {extract_ips:.1f} img/s',
                  file=sys.stderr, flush=True)

    cpu_cap = torch.backends.cpu.get_cpu_capability() if hasattr(torch.backends, 'cpu') else 'unknown'
    bf16 = f"yes ({'/'.join(sorted(cpu_flags() & BF16_FLAGS))})" if native_bf16() else 'no'
    print(f'\nEngine throughput on {device} (torch {torch.__version__}, {torch.get_num_threads()} threads, '
          f'CPU capability {cpu_cap}, native bf16: {bf16}), batch {args.batch_size}, {args.height}x{args.width}, '
          f'{args.warmup} warm-up + up to {args.iters} timed iterations (at most {args.max_seconds:g} s), '
          'random tensors\n')
    print('| model | mode | train img/s | vs fp32 | extract img/s | vs fp32 |')
    print('|---|---|---:|---:|---:|---:|')
    for model_name, mode, tr, tr_single, trr, ex, ex_single, exr in rows:
        print(f"| {model_name} | {mode} | {tr:.1f}{'*' if tr_single else ''} | {trr:.2f}x | "
              f"{ex:.1f}{'*' if ex_single else ''} | {exr:.2f}x |")
    if any(r[3] or r[6] for r in rows):
        print(f'\n* one call, the first (warm-up) one: it alone took longer than {args.max_seconds:g} s, so it was '
              'not repeated; it includes one-time costs (small next to such a call).')


if __name__ == '__main__':
    main()
