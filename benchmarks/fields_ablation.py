"""Each field on and off, or settings changed: valid and test metrics of one config section.

Run by hand, in the project folder, after the study has encoded its data:

    .venv/bin/python benchmarks/fields_ablation.py --model deepfm --objective stars
    .venv/bin/python benchmarks/fields_ablation.py --model fm --objective ranking --seeds 42 43
    .venv/bin/python benchmarks/fields_ablation.py --model deepfm --seeds 42 43 44 \
        --settings "{dropout: 0.45}" "{dropout: 0.85, embed_dim: 64}"

Trains the section of config/config.yaml as it is, then once without each of its fields
and once with each encoded field it lacks (for ranking, user and movie fields only), with
every other setting unchanged; or, with --settings, once per variant given (a YAML mapping
of the section's keys to their values in that variant) instead of the fields. Prints one
table: valid and test RMSE (stars) or NDCG@k (ranking; test candidates as the config's
ranking.exclude), the mean over --seeds, and the kept epochs. Choose on the valid
columns; the test columns are for the note.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from deepfm_rec.config import first_l2, load_config, study_path, train_settings
from deepfm_rec.data.batches import BatchMaker
from deepfm_rec.data.encoding import open_encoded
from deepfm_rec.inference import predict
from deepfm_rec.metrics import relevant_items
from deepfm_rec.topk import ModelRanker, rank_and_score
from deepfm_rec.train import split_settings, train


def scores(encoded, model, history, kept, objective: str, ranking: dict) -> tuple[float, float]:
    """(valid, test) RMSE or NDCG@k of a trained model at its kept epoch."""
    row = history.set_index("epoch").loc[kept]
    if objective == "stars":
        test = encoded.rows("test")
        maker = BatchMaker(encoded, fields=model.fields)
        error = predict(model, maker, test, 8192) - np.asarray(encoded.arrays["label"])[test]
        return math.sqrt(row["valid_mse"]), float(np.sqrt(np.mean(error**2)))
    relevant = relevant_items(encoded, "test", ranking["threshold"])
    table = rank_and_score(
        ModelRanker(model, encoded), relevant, [ranking["k"]], ranking["exclude"]
    )
    return float(row["valid_ndcg"]), float(table["ndcg"].iloc[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=["fm", "deepfm"], default="fm")
    parser.add_argument("--objective", choices=["stars", "ranking"], default="stars")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    parser.add_argument("--encoded", type=Path, help="default results/{dataset}/encoded")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--settings",
        nargs="+",
        metavar="MAPPING",
        help='variants instead of the fields: "{lr: 0.001}" ...',
    )
    args = parser.parse_args()
    config = load_config(args.config)
    section = first_l2(train_settings(config, args.model, args.objective))
    variants = [("as configured", {})]
    for text in args.settings or []:
        try:
            changed = yaml.safe_load(text)
        except yaml.YAMLError as error:
            parser.error(f"--settings {text!r} is not valid YAML: {error}")
        if not isinstance(changed, dict) or not changed:
            parser.error(f'--settings {text!r}: not a YAML mapping such as "{{lr: 0.001}}"')
        unknown = sorted(set(changed) - set(section))
        if unknown:
            parser.error(
                f"--settings {text!r}: {', '.join(unknown)} not a key of "
                f"{args.model}.{args.objective} in {args.config}"
            )
        variants.append((text, changed))
    torch.set_num_threads(args.threads)
    encoded = open_encoded(args.encoded or study_path("encoded", dataset=config["dataset"]))
    if not args.settings:
        fields = section["fields"]
        owners = {f["name"]: f["owner"] for f in encoded.meta["fields"]}
        allowed = [n for n in owners if args.objective == "stars" or owners[n] != "pair"]
        variants += [
            (f"without {name}", {"fields": [f for f in fields if f != name]}) for name in fields
        ]
        variants += [
            (f"with {name}", {"fields": [*fields, name]}) for name in allowed if name not in fields
        ]
    metric = "RMSE" if args.objective == "stars" else f"NDCG@{config['ranking']['k']}"
    rows = []
    for label, changed in variants:
        found, epochs = [], []
        for seed in args.seeds:
            train_config, hparams = split_settings({**section, **changed})
            model, history, kept = train(
                encoded, args.model, hparams, train_config, seed=seed, device="cpu"
            )
            found.append(scores(encoded, model, history, kept, args.objective, config["ranking"]))
            epochs.append(str(kept))
        valid, test = np.mean(found, axis=0)
        kept_epochs = "/".join(epochs)
        rows.append(
            {
                "variant": label,
                f"valid {metric}": valid,
                f"test {metric}": test,
                "kept epochs": kept_epochs,
            }
        )
        print(f"{label}: valid {valid:.4f} test {test:.4f} kept {kept_epochs}", flush=True)
    table = pd.DataFrame(rows)
    print(f"\n{args.model} ({args.objective}) on {encoded.meta['dataset']}, seeds {args.seeds}:")
    print(table.to_string(index=False, float_format="%.4f"))


if __name__ == "__main__":
    main()
