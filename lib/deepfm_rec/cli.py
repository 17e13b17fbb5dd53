"""The `deepfm-rec` command line.

    deepfm-rec recommend --user 1 -k 10

prints a user's top-K movies, beside the movies they rated highest in train, so a person
can judge the list. Run in the project folder, the model, K and excluded splits are the
study's (config/config.yaml's `recommend`, its first seed, `ranking.k`,
`ranking.exclude` and `device`, as in the workflow's topk.tsv); the options name others.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from loguru import logger

TITLE_WIDTH = 60


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def format_table(table: pd.DataFrame) -> str:
    """A fixed-width text table: numbers right-aligned, text left-aligned and shortened."""
    columns = {}
    for name in table.columns:
        column = table[name]
        if pd.api.types.is_float_dtype(column):
            cells = [f"{v:.2f}" for v in column]
        else:
            cells = [_shorten(str(v), TITLE_WIDTH) for v in column]
        width = max([len(name), *map(len, cells)])
        numeric = pd.api.types.is_numeric_dtype(column)
        columns[name] = [(c.rjust(width) if numeric else c.ljust(width)) for c in [name, *cells]]
    lines = ["  ".join(row).rstrip() for row in zip(*columns.values(), strict=True)]
    return "\n".join(lines)


def default_encoded(model: Path) -> Path:
    """The encoded folder of a workflow checkpoint: the nearest `encoded` folder above it
    (results/{dataset}/encoded for results/{dataset}/{model}/seed{seed}/model.pt)."""
    parents = model.resolve().parents
    for folder in parents:
        if (folder / "encoded" / "meta.json").is_file():
            return folder / "encoded"
    for folder in parents:  # damaged: named, so that the error says which
        if (folder / "encoded").is_dir():
            return folder / "encoded"
    # none: the workflow's place, results/{dataset}/encoded for .../{objective}/seed{seed}/
    return parents[3] / "encoded" if len(parents) > 4 else model.parent / "encoded"


def read_study_config(parser: argparse.ArgumentParser, hint: str = "") -> dict:
    """config/config.yaml of this folder, checked against the workflow's schema and its
    defaults filled in (deepfm_rec.config); a usage error, `hint` appended, if it is
    missing or not a valid config."""
    from deepfm_rec.config import CONFIG, SCHEMA, load_config
    from deepfm_rec.data.errors import DataError

    missing = (
        f"no {CONFIG} and {SCHEMA} here: run in the project folder (its settings are the "
        f"base){hint}"
    )
    if not CONFIG.is_file():
        parser.error(missing)
    try:
        return load_config(CONFIG)
    except FileNotFoundError:  # the schema (the file was checked)
        parser.error(missing)
    except DataError as error:
        where = f"{CONFIG}: " if str(error).startswith("config key") else ""
        parser.error(f"{where}{error}{hint}")


def check_items(encoded_dir: Path, n_movies: int, parser: argparse.ArgumentParser) -> None:
    """items.tsv of the encoded folder: there, and a row for each movie code 1..n_movies."""
    from deepfm_rec.data.catalogue import read_items

    path = encoded_dir / "items.tsv"
    again = "encode it again (snakemake --forcerun encode)"
    if not path.is_file():
        parser.error(f"{path}: missing; {again}")
    try:
        items = read_items(encoded_dir)
    except (ValueError, KeyError, TypeError) as error:  # pandas' parse errors are ValueErrors
        parser.error(f"{path}: not the movie table encode wrote ({type(error).__name__}); {again}")
    codes = list(range(1, n_movies + 1))
    if list(items.index) != codes or not {"title", "genres"} <= set(items.columns):
        parser.error(
            f"{path}: not the movie table encode wrote (a title and genres for each "
            f"movie code 1..{n_movies}); {again}"
        )


def recommend(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """The `recommend` subcommand: print one user's top-K list."""
    # what is left out is the study's (config/config.yaml), as in the workflow's topk.tsv
    left_out = [o for o in ("model", "k", "exclude", "device") if getattr(args, o) is None]
    if left_out:
        from deepfm_rec.config import recommender_path

        options = ", ".join(f"-{o}" if o == "k" else f"--{o}" for o in left_out)
        config = read_study_config(parser, f"; or give {options}")
        study = {
            "model": recommender_path(config),
            "k": config["ranking"]["k"],
            "exclude": config["ranking"]["exclude"],
            "device": config["device"],
        }
        for option in left_out:
            setattr(args, option, study[option])
    model = Path(args.model)
    encoded_dir = Path(args.encoded) if args.encoded else default_encoded(model)
    # Bad arguments fail before torch is imported (seconds of a person's time).
    if not model.is_file():
        hint = " (run the study first: snakemake --cores 2)" if "model" in left_out else ""
        parser.error(f"--model {model}: no such checkpoint{hint}")
    if not (encoded_dir / "meta.json").is_file():
        parser.error(
            f"--encoded {encoded_dir}: not an encoded folder (no meta.json); by default it is "
            f"the nearest 'encoded' folder above the model (results/{{dataset}}/encoded)"
        )
    if args.k < 1:
        parser.error(f"-k {args.k}: the list needs at least one movie")
    from deepfm_rec.data.encoding import open_encoded  # imports no torch
    from deepfm_rec.data.errors import DataError

    try:
        encoded = open_encoded(encoded_dir)
    except DataError as error:
        parser.error(str(error))
    n_movies = encoded.size("item") - 1  # code 0 is no movie
    if args.k > n_movies:
        parser.error(f"-k {args.k}: more than the {n_movies} movies of {encoded_dir}")
    ids = np.asarray(encoded.arrays["user_ids"])[1:]  # code 0 is no user
    if not (ids == args.user).any():
        parser.error(
            f"--user {args.user}: no such user in the train split of {encoded_dir} "
            f"({len(ids)} users, ids {ids.min()}..{ids.max()})"
        )

    # imported here, not at the top: --help and bad arguments answer without the seconds
    # that importing torch takes (there is no module cycle)
    from deepfm_rec.data.catalogue import known_favourites, user_code
    from deepfm_rec.inference import resolve_device
    from deepfm_rec.recommend import Recommender, recommendation_table
    from deepfm_rec.topk import exclusion_splits, rated_items

    try:
        splits = exclusion_splits(args.exclude)
    except ValueError as error:
        parser.error(f"--exclude {args.exclude}: {error}")
    code = user_code(encoded, args.user)
    check_items(encoded_dir, n_movies, parser)
    try:
        device = str(resolve_device(args.device, key="--device"))
        recommender = Recommender.from_checkpoint(model, encoded, device)
    except (ValueError, DataError) as error:
        parser.error(str(error))
    items, scores = recommender.top_k(np.array([code]), args.k, args.exclude)
    stars = recommender.model.objective == "stars"
    table = recommendation_table(encoded, np.array([code]), items, scores, stars)
    indptr, _ = rated_items(encoded, splits)
    n_candidates = recommender.n_candidates - int(indptr[code + 1] - indptr[code])
    not_rated = f" they did not rate in {' or '.join(splits)}" if splits else ""
    print(
        f"Top {len(table)} for user {args.user} by {recommender.model.__class__.__name__} "
        f"trained for {recommender.model.objective} ({model}), from {n_candidates} "
        f"movies{not_rated}:"
    )
    if stars:
        shown = table[["rank", "predicted_stars", "score", "title", "genres"]]
        print(format_table(shown.rename(columns={"predicted_stars": "stars"})))
        print(
            "stars: the predicted rating, clipped to the scale; score: unclipped, orders the list"
        )
    else:
        print(format_table(table[["rank", "score", "title", "genres"]]))
        print("score: the ranking model's logit (no rating), orders the list")
    if args.history > 0:
        favourites, n_train = known_favourites(encoded, code, args.history)
        print(f"\nTheir highest-rated movies in train ({len(favourites)} of {n_train}):")
        print(format_table(favourites))


SEED_MAX = 2**32 - 1  # numpy's and torch's generators take no more (as the schema says)


def tune(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """The `tune` subcommand: a seeded search on the valid split (deepfm_rec.tuning)."""
    # Bad arguments fail before the search: it would train, then fail.
    if args.trials is not None and args.trials < 1:
        parser.error(f"--trials {args.trials}: the search needs at least one trial")
    for seed in [*([] if args.seed is None else [args.seed]), *(args.seeds or [])]:
        if not 0 <= seed <= SEED_MAX:
            parser.error(f"--seed(s) {seed}: a seed is 0 to {SEED_MAX} (2^32 - 1)")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads {args.threads}: at least one thread")
    if args.show < 0:
        parser.error(f"--show {args.show}: a number of trials, 0 or more")
    out = Path(args.out)
    if out.is_dir() or not out.parent.is_dir() or not os.access(out.parent, os.W_OK):
        parser.error(
            f"--out {out}: cannot write a file there (a folder, or its folder "
            "missing or not writable)"
        )
    from deepfm_rec.config import study_path, train_settings

    config = read_study_config(parser)
    search_settings = config["tune"]  # what the options leave out: the workflow's search's
    trials = search_settings["trials"] if args.trials is None else args.trials
    seed = search_settings["seed"] if args.seed is None else args.seed
    encoded = Path(args.encoded or study_path("encoded", dataset=config["dataset"]))
    if not (encoded / "meta.json").is_file():
        parser.error(
            f"--encoded {encoded}: not an encoded folder (snakemake --cores 2 {encoded} makes it)"
        )
    settings = train_settings(config, args.model, args.objective)

    from deepfm_rec.config import read_schema
    from deepfm_rec.data.errors import DataError
    from deepfm_rec.inference import resolve_device
    from deepfm_rec.search_space import check_l2, section_space
    from deepfm_rec.tuning import search  # torch and optuna: seconds, after the checks

    section = f"{args.model}.{args.objective}"
    try:
        space = section_space(section, config["tune"]["space"], read_schema())
        check_l2(section, space, settings["l2"])
        resolve_device(args.device, key="--device")
        table = search(
            encoded,
            args.model,
            settings,
            space,
            trials=trials,
            seed=seed,
            seeds=args.seeds or search_settings["seeds"],
            device=args.device,
            threads=args.threads,
            memory_budget=config["memory_budget_gb"] * 1e9,
            out=out,
        )
    except DataError as error:
        parser.error(str(error))
    except KeyboardInterrupt:  # Ctrl-C: the trials written so far stay, no traceback
        ended = f"the trials that ended are in {out}" if out.exists() else "no trial had ended"
        print(f"deepfm-rec tune: interrupted; {ended}", file=sys.stderr)
        raise SystemExit(130) from None
    print(table.head(args.show).to_string(index=False, float_format="%.4g"))
    print(f"\nall {len(table)} trials, best first: {out}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepfm-rec", description="FM and DeepFM recommenders on MovieLens."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    commands = parser.add_subparsers(dest="command", required=True)
    rec = commands.add_parser(
        "recommend",
        help="print a user's top-K movies",
        description="Print a user's top-K movies, among those they did not rate in the "
        "excluded splits, by a trained model's score (a ranking model's logit, or a star "
        "model's predicted rating).",
    )
    rec.add_argument(
        "--model",
        help="a model.pt written by the workflow (default: the study's recommender, from "
        "config/config.yaml: results/{dataset}/{recommend.model}/{recommend.objective}/"
        "seed{first seed}/model.pt)",
    )
    rec.add_argument("--user", required=True, type=int, help="a MovieLens user id")
    rec.add_argument("-k", type=int, help="list length (default: config/config.yaml's ranking.k)")
    rec.add_argument(
        "--encoded",
        help="the encoded folder the model was trained on "
        "(default: the nearest 'encoded' folder above the model, results/{dataset}/encoded)",
    )
    rec.add_argument("--device", help="auto, cpu, cuda, ... (default: config/config.yaml's device)")
    rec.add_argument(
        "--exclude",
        help="splits whose rated movies are not recommended: train, train+valid, "
        "train+valid+test, none (default: config/config.yaml's ranking.exclude)",
    )
    rec.add_argument(
        "--history",
        type=int,
        default=5,
        help="how many of the user's highest-rated train movies to show (default 5)",
    )
    rec.set_defaults(run=recommend, parser=rec)
    search = commands.add_parser(
        "tune",
        help="search a model's settings on the valid split (Optuna, seeded)",
        description="Train one config section (config/config.yaml) many times with settings "
        "drawn by Optuna's TPE sampler, scoring each on the validation split only (valid "
        "RMSE for stars, valid NDCG@k for ranking), and write the trials as a table.",
    )
    search.add_argument("--model", choices=["fm", "deepfm"], default="deepfm")
    search.add_argument("--objective", choices=["stars", "ranking"], default="stars")
    search.add_argument("--trials", type=int, help="trainings (default: the config's tune.trials)")
    search.add_argument("--seed", type=int, help="seeds the sampler (default: tune.seed)")
    search.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        help="each trial trains once per seed and scores their mean valid metric "
        "(default: tune.seeds)",
    )
    search.add_argument("--encoded", help="default results/{dataset}/encoded of the config")
    search.add_argument("--device", default="cpu", help="cpu (deterministic), cuda, ...")
    search.add_argument("--threads", type=int, help="CPU threads (default torch's)")
    search.add_argument("--out", default="tune.tsv", help="the trials table (default tune.tsv)")
    search.add_argument("--show", type=int, default=10, help="best trials printed (default 10)")
    search.set_defaults(run=tune, parser=search)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `deepfm-rec` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level="INFO" if args.verbose else "WARNING")
    args.run(args, args.parser)


if __name__ == "__main__":
    main()
