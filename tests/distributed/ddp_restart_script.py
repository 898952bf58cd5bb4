"""Run under torchrun by test_ddp_engine.py: train the toy task (:func:`ddp_helpers.build_engine`, batch 8 per
rank) for ``--epochs`` epochs with ``run(resume='auto')``. With ``--kill`` rank 1 SIGKILLs itself in the second
epoch on torchrun's first attempt, so torchrun's ``--max-restarts`` restarts the group and the run continues from
its last checkpoint. Rank 0 saves the final weights, the restart count and the epochs trained to ``out``."""
import argparse
import os
import signal
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ddp_helpers import build_engine  # noqa: E402

from torchreid.utils import distributed as tdist  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('save_dir')
    parser.add_argument('out')
    parser.add_argument('--epochs', type=int, default=2)
    parser.add_argument('--kill', action='store_true')
    args = parser.parse_args()
    torch.set_num_threads(1)
    joined, _ = tdist.init_distributed('cpu')
    try:
        engine = build_engine(8)
        if args.kill and tdist.elastic_restart_count() == 0 and tdist.get_rank() == 1:
            step = engine.forward_backward

            def dying_step(data):
                if engine.epoch == 1 and engine.batch_idx == 1:
                    os.kill(os.getpid(), signal.SIGKILL)
                return step(data)

            engine.forward_backward = dying_step
        engine.run(save_dir=args.save_dir, max_epoch=args.epochs, print_freq=0, keep_last=None, resume='auto')
        if tdist.is_main_process():
            torch.save({'state_dict': engine.model.state_dict(), 'restarts': tdist.elastic_restart_count(),
                        'world': tdist.get_world_size(), 'epochs': [h['epoch'] for h in engine.history]}, args.out)
    finally:
        if joined:
            tdist.destroy_distributed()


if __name__ == '__main__':
    main()
    tdist.exit_process(0)
