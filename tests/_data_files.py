"""Small data files in the real formats of the example specs, written by the tests: a Titanic-like
CSV (categorical columns, missing values), PNG class folders, IMDB-like review folders, a CSV of daily
counts, and CIFAR-10's pickled batches."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

POSITIVE = "great wonderful superb moving brilliant loved enjoyable".split()
NEGATIVE = "awful boring terrible dull waste hated poor".split()
NEUTRAL = "the film movie a plot actor scene story was it and of".split()


def titanic_csv(path: Path, rows: int = 200, seed: int = 0) -> Path:
    """Kaggle's train.csv columns; survival depends on sex and class, so it can be learnt."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["male", "female"], rows)
    pclass = rng.choice([1, 2, 3], rows)
    survived = ((sex == "female") ^ (rng.random(rows) < 0.15)) | ((pclass == 1) & (rng.random(rows) < 0.5))
    age = np.round(rng.uniform(1, 70, rows), 1).astype(object)
    age[rng.random(rows) < 0.2] = ""
    embarked = rng.choice(["S", "C", "Q"], rows).astype(object)
    embarked[rng.random(rows) < 0.05] = ""
    cabin = np.array([f"C{n}" if rng.random() < 0.25 else "" for n in range(rows)], dtype=object)
    lines = ["PassengerId,Survived,Pclass,Name,Sex,Age,SibSp,Parch,Ticket,Fare,Cabin,Embarked"]
    for i in range(rows):
        lines.append(f'{i + 1},{int(survived[i])},{pclass[i]},"Person, No. {i}",{sex[i]},{age[i]},'
                     f"{rng.integers(0, 4)},{rng.integers(0, 3)},T{i},{rng.uniform(5, 80):.2f},{cabin[i]},{embarked[i]}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def png_folders(root: Path, classes: list[str], per_class: int = 6, size: int = 8, seed: int = 0) -> Path:
    """root/<class>/<n>.png, RGB, each class a different mean colour."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for index, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            pixels = rng.integers(0, 120, (size, size, 3)) + 60 * (index % 3)
            Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{n}.png")
    return root


def review(rng, positive: bool, words: int = 30) -> str:
    vocab = POSITIVE if positive else NEGATIVE
    picked = [rng.choice(vocab) if rng.random() < 0.3 else rng.choice(NEUTRAL) for _ in range(words)]
    return " ".join(picked).capitalize() + "."


def review_folders(root: Path, per_class: int = 30, seed: int = 0) -> Path:
    """IMDB's layout: root/{pos,neg}/<id>_<rating>.txt, and an unsup/ folder that is no class."""
    rng = np.random.default_rng(seed)
    for label in ("pos", "neg", "unsup"):
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(per_class if label != "unsup" else 3):
            (folder / f"{n}_{rng.integers(1, 11)}.txt").write_text(review(rng, label == "pos"))
    return root


def daily_counts_csv(path: Path, days: int = 120) -> Path:
    """Cumulative daily counts, oldest first: date, confirmed, deaths, recovered."""
    t = np.arange(days)
    new = 50 + 40 * np.sin(t / 9.0) + t
    confirmed = np.cumsum(np.round(new)).astype(int)
    deaths = np.cumsum(np.round(new * 0.02 + (t % 3))).astype(int)
    recovered = np.cumsum(np.round(np.roll(new, 10) * 0.8)).astype(int)
    lines = ["date,confirmed,deaths,recovered"] + [
        f"2020-{1 + d // 28:02d}-{1 + d % 28:02d},{confirmed[d]},{deaths[d]},{recovered[d]}" for d in range(days)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def cifar10_batches(root: Path, per_batch: int = 20, seed: int = 0) -> Path:
    """root/cifar-10-batches-py/ as torchvision reads it (its md5 check must be patched out)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = rng.integers(0, 10, per_batch)
        data = rng.integers(0, 256, (per_batch, 3 * 32 * 32)).astype(np.uint8)
        with open(folder / name, "wb") as handle:
            pickle.dump({"data": data, "labels": labels.tolist()}, handle)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({"label_names": names}, handle)
    return root
