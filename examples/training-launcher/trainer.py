#!/usr/bin/env python3
"""A stand-in for a PyTorch training job, for examples/training-launcher.

Python 3 standard library only. It prints one JSON line per step (flushed) in
the format training.Ingest reads, waits --data-wait for its "data loader" and
sleeps --step-time per step, writes a checkpoint every --checkpoint-every steps
(taking --checkpoint-time) and prints a checkpoint event, and on SIGTERM or
SIGINT writes a last checkpoint, prints its event and exits 0.

  python3 trainer.py --steps 100 --step-time 0.1
  python3 trainer.py --fail-at 30            # exit 1 at step 30 (first attempt only)
  python3 trainer.py --nan-at 50             # loss NaN at step 50 (json writes NaN)
  python3 trainer.py --checkpoint-dir /tmp/ck  # resume from the last checkpoint
  python3 trainer.py --data-wait 0.5         # a slow data loader

With --checkpoint-dir, a trainer that finds a checkpoint there resumes after
its step and prints {"event": "resume", "step": N, "duration": S} first, so
the steps it runs again (those after N that the crashed attempt had done) are
counted as recomputed.

The launcher sets MODELTEL_RESTART_COUNT (like TORCHELASTIC_RESTART_COUNT);
--fail-at fails only while it is below --fail-times.
"""

import argparse
import json
import math
import os
import signal
import sys
import time

stop_signal = None


def on_signal(signum, _frame):
    global stop_signal
    stop_signal = signum


def emit(obj):
    print(json.dumps(obj), flush=True)


def checkpoint(args, step, reason):
    start = time.monotonic()
    if args.checkpoint_time > 0:
        time.sleep(args.checkpoint_time)  # writing the weights
    size = 0
    if args.checkpoint_dir:
        os.makedirs(args.checkpoint_dir, exist_ok=True)
        path = os.path.join(args.checkpoint_dir, "checkpoint.json")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"step": step}, f)
            f.write(" " * 4096)  # some weights
        os.replace(tmp, path)
        size = os.path.getsize(path)
    else:
        size = 4096 + 8 * step
    emit({"event": "checkpoint", "step": step, "duration": time.monotonic() - start,
          "bytes": size, "reason": reason})


def resume_step(args):
    """The step of the checkpoint in --checkpoint-dir (0: none), printed as a
    resume event when there is one."""
    if not args.checkpoint_dir:
        return 0
    start = time.monotonic()
    try:
        with open(os.path.join(args.checkpoint_dir, "checkpoint.json")) as f:
            step = int(json.loads(f.read()).get("step", 0))
    except (OSError, ValueError):
        return 0
    if step > 0:
        emit({"event": "resume", "step": step, "duration": time.monotonic() - start})
    return step


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--step-time", type=float, default=0.1,
                   help="seconds per step (forward, backward, optimizer), after the data wait")
    p.add_argument("--data-wait", type=float, default=-1,
                   help="seconds the data loader takes before each step (default: a tenth of --step-time)")
    p.add_argument("--checkpoint-time", type=float, default=0, help="seconds a checkpoint save takes")
    p.add_argument("--fail-at", type=int, default=0, help="exit 1 at this step (0: never)")
    p.add_argument("--fail-times", type=int, default=1,
                   help="fail only while MODELTEL_RESTART_COUNT is below this")
    p.add_argument("--nan-at", type=int, default=0, help="report a NaN loss at this step (0: never)")
    p.add_argument("--checkpoint-every", type=int, default=10)
    p.add_argument("--checkpoint-dir", default="")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--steps-per-epoch", type=int, default=50)
    args = p.parse_args()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    restart = int(os.environ.get("MODELTEL_RESTART_COUNT", "0"))
    start = resume_step(args)
    print(f"trainer: pid {os.getpid()}, attempt {restart}, starting at step {start + 1}", flush=True)
    print("trainer: warming up", file=sys.stderr, flush=True)

    step = start
    while step < args.steps:
        if stop_signal is not None:
            checkpoint(args, step, "signal")
            print(f"trainer: got signal {stop_signal}, checkpointed at step {step}", flush=True)
            return 0
        step += 1
        wait = args.data_wait if args.data_wait >= 0 else args.step_time * 0.1
        w0 = time.monotonic()
        time.sleep(wait)  # the data loader
        t0 = time.monotonic()
        wait = t0 - w0
        time.sleep(args.step_time)  # forward, backward, optimizer
        if args.fail_at and step == args.fail_at and restart < args.fail_times:
            print(f"trainer: simulated failure at step {step}", file=sys.stderr, flush=True)
            return 1
        loss = 2.5 * math.exp(-step / 50.0) + 0.5 + 0.01 * math.sin(step)
        if args.nan_at and step == args.nan_at:
            loss = float("nan")
        lr = 3e-4 * min(1.0, step / 10.0)
        emit({"step": step, "loss": loss, "lr": lr, "grad_norm": 1.0 + 0.1 * math.cos(step),
              "samples": args.batch_size, "tokens": args.batch_size * args.seq_len,
              "step_time": time.monotonic() - t0, "data_wait": wait,
              "epoch": (step - 1) // args.steps_per_epoch})
        if args.checkpoint_every and step % args.checkpoint_every == 0:
            checkpoint(args, step, "periodic")
    print("trainer: done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
