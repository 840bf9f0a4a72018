"""Small non-movie data sets that ranking tests write (no fakes: real CSV files)."""

import numpy as np


def write_recipes(folder, n_users=40, n_items=120, per_user=12, seed=0):
    """A small non-movie data set (recipes; users cook within one of four cuisines)."""
    rng = np.random.default_rng(seed)
    cuisines = ["Thai", "Italian", "Mexican", "Nordic"]
    items = ["item_id,title,text,categories"]
    for i in range(n_items):
        c = cuisines[i % 4]
        items.append(f"r{i},{c} dish {i},A {c.lower()} recipe number {i} with {['rice', 'pasta', 'beans', 'fish'][i % 4]},{c}")
    rows = ["user_id,item_id,timestamp,rating"]
    for u in range(n_users):
        pool = [i for i in range(n_items) if i % 4 == u % 4]
        for j, i in enumerate(rng.choice(pool, per_user, replace=False)):
            rows.append(f"u{u},r{i},{1_000_000 + 1000 * u + j},{int(rng.integers(3, 6))}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "items.csv").write_text("\n".join(items) + "\n", encoding="utf-8")
    (folder / "log.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder / "items.csv", folder / "log.csv"


def write_popularity_shop(folder, n_users=80, n_items=200, per_user=15, seed=0):
    """A hardware shop whose only signal is popularity: every user draws items from one shared
    Zipf distribution (no personal taste), so the ``pop`` channel carries all of it."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_items + 1) ** 1.1
    p /= p.sum()
    kinds = ["hammer", "drill", "saw", "wrench", "glue"]
    items = ["item_id,title,text,categories"]
    for i in range(n_items):
        k = kinds[rng.integers(0, len(kinds))]          # text unrelated to what users pick
        items.append(f"h{i},{k.title()} model {i},A {k} for the workshop (model {i}),{k.title()}")
    rows = ["user_id,item_id,timestamp,rating"]
    for u in range(n_users):
        for j, i in enumerate(rng.choice(n_items, per_user, replace=False, p=p)):
            rows.append(f"u{u},h{i},{1_000_000 + 1000 * u + j},5")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "items.csv").write_text("\n".join(items) + "\n", encoding="utf-8")
    (folder / "log.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder / "items.csv", folder / "log.csv"
