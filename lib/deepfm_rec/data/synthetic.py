"""Synthetic MovieLens-like ratings drawn from a known model, in the ml-10m layout.

The ground truth (all of it drawn from one seeded generator), for user u and movie i:

    x_ui   = mu + b_u + b_i + <p_u, q_i> + mean over the genres g of i of (e_g + a_ug)
    rating = round to half stars (clip(x_ui + eps, 0.5, 5)),  eps ~ N(0, noise^2)

with user and item biases b, latent factors p, q of `embed_dim` dimensions, a global
effect e_g per genre and a genre affinity a_ug per user. Each movie has 1-3 of the 18
MovieLens genres. Users and movies are active in proportion to a power law of their
rank (Zipf-like), capped so that no user is expected to rate more than half of the
movies nor any movie to be rated by more than half of the users; (user, movie) pairs
are unique. The best possible predictor is E[rating | x_ui], whose RMSE on the
generated ratings (the noise floor) is recorded.

Files written in the folder:
    ratings.dat, movies.dat, tags.dat  the ml-10m layout (`::`, UTF-8); a seeded 1% of
                                       ratings carry a tag naming one of the movie's genres.
    expected.npy  float32 (N,) E[rating | ground truth] of each line of ratings.dat, stars.
    truth.json    seed, sizes, noise std and the RMSE of the best and of the mean predictor.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from deepfm_rec.data.errors import DataError

# The 18 genres of MovieLens (ml-10m's names, without IMAX).
GENRES = tuple(
    "Action|Adventure|Animation|Children|Comedy|Crime|Documentary|Drama|Fantasy|Film-Noir|"
    "Horror|Musical|Mystery|Romance|Sci-Fi|Thriller|War|Western".split("|")
)

MEAN = 3.5  # stars, mu
USER_BIAS_STD, ITEM_BIAS_STD = 0.35, 0.45  # stars
INTERACTION_STD = 0.4  # stars, std of <p_u, q_i>
GENRE_STD, AFFINITY_STD = 0.15, 0.3  # stars, of e_g and a_ug
USER_EXPONENT, ITEM_EXPONENT = 0.8, 1.2  # activity ~ rank^-exponent
TAG_FRACTION = 0.01
FIRST_TIME, LAST_TIME = 789652009, 1231131736  # seconds, the span of ml-10m (1995-2009)
STARS = np.arange(1, 11) / 2  # the half-star scale 0.5 .. 5
MAX_DENSITY = 0.25  # ratings per (user, movie) pair at most


def default_sizes(n_ratings: int) -> tuple[int, int]:
    """(users, movies) for n_ratings, scaled like MovieLens: ml-10m's 70k users and 10k
    movies at 10M ratings, and close to ml-100k's 943 and 1682 at 100k."""
    scale = n_ratings / 10_000_000
    return max(20, round(70_000 * scale**0.9)), max(50, round(10_000 * scale**0.4))


def _activity(size: int, exponent: float, cap: float) -> np.ndarray:
    """Probabilities ~ rank^-exponent over `size` ranks, none above `cap`: the head is
    cut to `cap` and the tail scaled up to keep the sum 1 (water filling)."""
    weight = np.arange(1, size + 1, dtype=np.float64) ** -exponent
    tail = np.cumsum(weight[::-1])[::-1]  # tail[k] = sum of weight[k:]
    scale = (1 - np.arange(size) * cap) / tail  # scale of the tail when k ranks are capped
    capped = int(np.argmax(scale * weight <= cap))
    return np.minimum(scale[capped] * weight, cap)


def _pairs(rng: np.random.Generator, n: int, p_user: np.ndarray, p_item: np.ndarray):
    """n unique (user, item) index pairs sorted by user then item: pairs drawn from
    p_user x p_item in oversampled rounds, duplicates dropped, and the excess dropped at
    random."""
    n_items = len(p_item)
    keys = np.zeros(0, dtype=np.int64)  # user * n_items + item, sorted and unique
    while len(keys) < n:
        m = int(1.5 * (n - len(keys))) + 1000  # 1.5: one round at 10M ratings
        # users from multinomial counts come out sorted; shuffled movies pair independently
        user = np.repeat(np.arange(len(p_user)), rng.multinomial(m, p_user))
        item = rng.permutation(np.repeat(np.arange(n_items), rng.multinomial(m, p_item)))
        # sort and compare neighbours; np.unique's hash table is slower on 10M keys
        keys = np.sort(np.concatenate([keys, user * n_items + item]))
        keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
    keep = np.ones(len(keys), dtype=bool)
    keep[rng.choice(len(keys), len(keys) - n, replace=False)] = False
    return keys[keep] // n_items, keys[keep] % n_items


def _expected(x: np.ndarray, noise: float) -> np.ndarray:
    """E[round_half(clip(x + eps, 0.5, 5))] for eps ~ N(0, noise^2), in stars.

    The rating passes each threshold t = 0.75, 1.25, .., 4.75 with probability
    Phi((x - t) / noise), each adding half a star to 0.5. It is a smooth function of x
    alone, evaluated on a fine grid and interpolated.
    """
    grid = np.linspace(x.min() - 1e-6, x.max() + 1e-6, 4001)
    thresholds = STARS[:-1] + 0.25
    z = (grid[:, None] - thresholds[None, :]) / (noise * math.sqrt(2))
    phi = 0.5 * (1 + np.vectorize(math.erf)(z))
    return np.interp(x, grid, 0.5 + 0.5 * phi.sum(axis=1))


def _write_lines(path: Path, columns: list, chunk: int = 1_000_000) -> None:
    """Write the rows of `columns` (equal-length arrays or lists) as `::`-joined UTF-8
    lines, a chunk of rows at a time to bound the Python objects alive at once."""
    line = "::".join(["{}"] * len(columns)) + "\n"
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for start in range(0, len(columns[0]), chunk):
            rows = slice(start, start + chunk)
            part = [c[rows].tolist() if isinstance(c, np.ndarray) else c[rows] for c in columns]
            out.write("".join(map(line.format, *part)))


def generate(
    folder: Path,
    *,
    n_ratings: int,
    n_users: int | None,
    n_items: int | None,
    seed: int,
    noise: float,
    embed_dim: int,
) -> dict:
    """Write a synthetic dataset in the ml-10m layout into `folder` and return its truth.

    Args:
        folder: the folder to write (created; files in it are replaced).
        n_ratings: number of ratings (unique user-movie pairs).
        n_users, n_items: number of users and movies; None scales them like MovieLens
            (default_sizes).
        seed: seeds everything; the same arguments give byte-identical files.
        noise: std of the Gaussian rating noise, in stars (before clipping and rounding).
        embed_dim: dimension of the true latent factors.

    Returns:
        The truth.json dict: seed, sizes, noise_std, bayes_rmse (the RMSE of the best
        possible predictor E[rating | ground truth], in stars), mean_rmse (of the global
        mean rating), rating_mean.
    """
    default_users, default_items = default_sizes(n_ratings)
    n_users = default_users if n_users is None else n_users
    n_items = default_items if n_items is None else n_items
    if noise <= 0 or embed_dim < 1 or n_ratings < 1:
        raise ValueError("noise, embed_dim and n_ratings must be positive")
    if n_ratings > MAX_DENSITY * n_users * n_items:
        raise DataError(
            f"config key 'synthetic': {n_ratings} ratings of {n_users} users x {n_items} "
            f"movies is a density above {MAX_DENSITY}; ask for more users or movies "
            "(n_users, n_items; null scales them with n_ratings)"
        )
    rng = np.random.default_rng(seed)

    # The ground truth of the module docstring.
    user_bias = rng.normal(0, USER_BIAS_STD, n_users)
    item_bias = rng.normal(0, ITEM_BIAS_STD, n_items)
    factor_std = math.sqrt(INTERACTION_STD / math.sqrt(embed_dim))  # var(<p,q>) = d std^4
    p = rng.normal(0, factor_std, (n_users, embed_dim))
    q = rng.normal(0, factor_std, (n_items, embed_dim))
    genre_effect = rng.normal(0, GENRE_STD, len(GENRES))
    affinity = rng.normal(0, AFFINITY_STD, (n_users, len(GENRES)))
    n_genres = rng.integers(1, 4, n_items)  # 1-3 genres per movie
    genres = rng.random((n_items, len(GENRES))).argsort(axis=1)[:, :3]  # (I, 3) distinct

    # ids are 1 + index; activity is shuffled over the ids so that ids carry no rank.
    p_user = _activity(n_users, USER_EXPONENT, 0.5 * n_items / n_ratings)[rng.permutation(n_users)]
    p_item = _activity(n_items, ITEM_EXPONENT, 0.5 * n_users / n_ratings)[rng.permutation(n_items)]
    user, item = _pairs(rng, n_ratings, p_user, p_item)  # sorted like ml-10m

    x = MEAN + user_bias[user] + item_bias[item]
    for start in range(0, n_ratings, 1_000_000):  # chunks bound the (B, D) temporaries
        rows = slice(start, start + 1_000_000)
        x[rows] += np.einsum("bd,bd->b", p[user[rows]], q[item[rows]])
    for j in range(3):
        g = genres[item, j]
        x += (j < n_genres[item]) * (genre_effect[g] + affinity[user, g]) / n_genres[item]
    rating = np.round(2 * np.clip(x + rng.normal(0, noise, n_ratings), 0.5, 5)) / 2
    expected = _expected(x, noise)
    timestamp = rng.integers(FIRST_TIME, LAST_TIME, n_ratings)
    tagged = np.flatnonzero(rng.random(n_ratings) < TAG_FRACTION)
    tag_genre = genres[item[tagged], rng.integers(0, n_genres[item[tagged]])]
    year = rng.integers(1920, 2009, n_items)

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    star_text = np.array([f"{s:g}" for s in STARS])  # "0.5", "1", .. "5" as in ml-10m
    ratings_text = star_text[(2 * rating).astype(int) - 1]
    _write_lines(folder / "ratings.dat", [user + 1, item + 1, ratings_text, timestamp])
    titles = [f"Synthetic movie {i + 1} ({y})" for i, y in enumerate(year)]
    movie_genres = [
        "|".join(GENRES[g] for g in sorted(gs[:k])) for gs, k in zip(genres, n_genres, strict=True)
    ]
    _write_lines(folder / "movies.dat", [np.arange(1, n_items + 1), titles, movie_genres])
    tags = [GENRES[g].lower() for g in tag_genre]
    _write_lines(folder / "tags.dat", [user[tagged] + 1, item[tagged] + 1, tags, timestamp[tagged]])
    np.save(folder / "expected.npy", expected.astype(np.float32))

    truth = {
        "seed": seed,
        "n_ratings": n_ratings,
        "n_users": n_users,
        "n_items": n_items,
        "embed_dim": embed_dim,
        "noise_std": noise,
        "bayes_rmse": float(np.sqrt(np.mean((rating - expected) ** 2))),
        "mean_rmse": float(rating.std()),
        "rating_mean": float(rating.mean()),
    }
    (folder / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    return truth
