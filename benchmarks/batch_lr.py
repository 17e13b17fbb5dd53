"""How batch size and learning rate interact: valid RMSE, epochs and time per setting.

Run by hand (tests/test_benchmarks.py runs it once on small data with --max-epochs 2 and
judges no figure), after the study has encoded the data:

    .venv/bin/snakemake --cores 2 results/ml-latest-small/encoded
    .venv/bin/python benchmarks/batch_lr.py
    .venv/bin/python benchmarks/batch_lr.py --model deepfm --batches 512 4096

Trains one stars model per (batch size, learning rate) with the settings of the config's
`fm.stars` or `deepfm.stars` section (fields, pooling, optimizer, ...), the first seed
and the study's early stopping, and prints one table. The learning rates are the
section's, and the section's scaled by the square root of batch / section batch (the
usual rule for Adam, whose step does not grow with the batch as SGD's does). Choices are
read on the validation split; the test split is not looked at.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
from loguru import logger

from deepfm_rec.config import first_l2, load_config, train_settings
from deepfm_rec.data.batches import BatchMaker
from deepfm_rec.data.encoding import open_encoded
from deepfm_rec.inference import predict
from deepfm_rec.train import TrainConfig, split_settings, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encoded", type=Path, default=Path("results/ml-latest-small/encoded"))
    parser.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    parser.add_argument("--model", choices=["fm", "deepfm"], default="fm")
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 1024, 8192])
    parser.add_argument("--max-epochs", type=int, help="default: the config's")
    args = parser.parse_args()
    if not (args.encoded / "meta.json").exists():
        raise SystemExit(f"{args.encoded}: no encoded data; build it with snakemake first")
    logger.remove()  # the per-epoch log lines; the table is the output
    config = load_config(args.config)
    torch.set_num_threads(config["threads"])
    base, hparams = split_settings(first_l2(train_settings(config, args.model, "stars")))
    if args.max_epochs:
        base.max_epochs = args.max_epochs
    encoded = open_encoded(args.encoded)
    valid = encoded.rows("valid")
    label = np.asarray(encoded.arrays["label"])[valid]

    print(
        f"{args.model} stars on {encoded.meta['dataset']}, seed {config['seeds'][0]}, "
        f"config batch {base.batch_size}, lr {base.lr}, {base.optimizer}, fields "
        f"{','.join(hparams['fields'])}, pooling {hparams['pooling']}"
    )
    print(
        f"{'batch':>6} {'lr':>9} {'steps/epoch':>12} {'epochs':>7} {'best':>5} "
        f"{'valid RMSE':>11} {'seconds':>8}"
    )
    for batch_size in args.batches:
        scaled = base.lr * math.sqrt(batch_size / base.batch_size)
        for lr in sorted({base.lr, scaled}):
            run = TrainConfig(**(vars(base) | {"batch_size": batch_size, "lr": lr}))
            start = time.perf_counter()
            model, history, best = train(
                encoded, args.model, hparams, run, seed=config["seeds"][0], device="cpu"
            )
            seconds = time.perf_counter() - start
            maker = BatchMaker(encoded, fields=model.fields)
            prediction = predict(model, maker, valid, 8192)
            rmse = float(np.sqrt(np.mean((prediction - label) ** 2)))
            steps = math.ceil(len(encoded.rows("train")) / batch_size)
            print(
                f"{batch_size:>6} {lr:>9.4g} {steps:>12} {len(history):>7} {best:>5} "
                f"{rmse:>11.4f} {seconds:>8.1f}"
            )


if __name__ == "__main__":
    main()
