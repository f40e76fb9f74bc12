"""Training benchmark: the fashion_bn batch-norm network trained three ways, in one process.

    (a) the hand-written loop people write: torchvision's FashionMNIST with ToTensor + Normalize
        through a DataLoader, `loss.item()` and `argmax(1).eq(y).sum().item()` every batch;
    (b) a hand-written loop over device-resident tensors: decoded once, batches are index_select
        slices of a `randperm`, metrics summed on the device and read once per epoch;
    (c) modelspec's runner (`run_grid`) on specs/fashion_bn.yaml, narrowed to that one run.

All three read the same IDX files through torchvision's FashionMNIST class: a full-size
Fashion-MNIST-shaped set (60,000 train / 10,000 test, 28x28 uint8) written to a temporary folder by
tiling the real subset under --source-root (or synthetic images where it is absent). Same network and
initial weights, seed, Adam lr 0.01, cross-entropy, shuffled batches of --batch-size, the same
normalize mean/std; each epoch is a training pass and an evaluation pass over the test split (eval
mode, no grad). (b) draws the same batches as (c) and does the same arithmetic, so their losses agree
to the last printed digit: a check that the two time the same work.

Seconds per epoch are the mean (and min) of the epochs after the first, which pays one-off costs
(modelspec traces the graph and logs an image grid there). Run with --help; bench/README.md has figures.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import struct
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from modelspec.runner.memory import steady_allocator

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "specs" / "fashion_bn.yaml"
TARGETS = {"c/a": 0.65, "c/b": 1.10}  # the targets, on a 2-core CPU at batch size 1000


@dataclass
class Result:
    """One loop's call; `merge` pools the calls of several rounds."""

    name: str
    epochs: list[float]  # seconds of each epoch: training pass + test evaluation
    wall: float  # the whole call: data loading, model building, every epoch, logging
    cpu: float  # CPU seconds of the whole call, this process and its reaped DataLoader workers
    train_loss: float
    test_accuracy: float
    note: str = ""
    timed: list[float] = field(default_factory=list)  # the epochs after the first (all if only one)
    firsts: list[float] = field(default_factory=list)

    def __post_init__(self):
        if not self.timed:
            self.timed = self.epochs[1:] or list(self.epochs)
            self.firsts = self.epochs[:1]

    def merge(self, other: "Result") -> "Result":
        return Result(self.name, self.epochs + other.epochs, self.wall + other.wall, self.cpu + other.cpu,
                      other.train_loss, other.test_accuracy, other.note,
                      self.timed + other.timed, self.firsts + other.firsts)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.timed)

    @property
    def best(self) -> float:
        return min(self.timed)


# --------------------------------------------------------------------------------------------------
# the data: IDX files in torchvision's raw layout


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file of unsigned bytes: magic (0, 0, 0x08, ndim), the sizes big-endian, the data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.tobytes())


def _source_split(source_root: Path | None, train: bool) -> tuple[np.ndarray, np.ndarray] | None:
    if source_root is None:
        return None
    from torchvision.datasets import FashionMNIST

    try:
        dataset = FashionMNIST(str(source_root), train=train, download=False)
    except RuntimeError:  # not there
        return None
    return dataset.data.numpy(), dataset.targets.numpy()


def _synthetic_split(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise around one random blob per class: learnable, 28x28 uint8."""
    rng = np.random.default_rng(seed)
    prototypes = rng.integers(0, 256, (10, 28, 28)).astype(np.int16)
    labels = rng.integers(0, 10, size).astype(np.uint8)
    noise = rng.integers(-60, 61, (size, 28, 28)).astype(np.int16)
    return np.clip(prototypes[labels] + noise, 0, 255).astype(np.uint8), labels


def build_dataset(root: Path, train_size: int, test_size: int, source_root: Path | None) -> str:
    """<root>/FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte; returns where from."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    origin = []
    for train, size, prefix in ((True, train_size, "train"), (False, test_size, "t10k")):
        real = _source_split(source_root, train)
        if real is not None and len(real[1]):
            images, labels = real
            tile = np.arange(size) % len(labels)  # repeat the real images up to the full size
            images, labels = images[tile], labels[tile]
            origin.append(f"{prefix}: {size} tiled from {len(real[1])} real images")
        else:
            images, labels = _synthetic_split(size, seed=1 if train else 2)
            origin.append(f"{prefix}: {size} synthetic images")
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images.reshape(size, 28, 28))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return "; ".join(origin)


def normalize_stats(root: Path) -> tuple[float, float]:
    """Mean and std of the training images in [0, 1]: the one normalize all three loops use."""
    from torchvision.datasets import FashionMNIST

    pixels = FashionMNIST(str(root), train=True, download=False).data.double().div_(255)
    return round(pixels.mean().item(), 6), round(pixels.std().item(), 6)


# --------------------------------------------------------------------------------------------------
# the hand-written loops


def fashion_bn() -> nn.Sequential:
    """The spec's `batch_norm` network, written by hand (same modules in the same order)."""
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.BatchNorm2d(6),
        nn.Conv2d(6, 12, kernel_size=5), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Flatten(),
        nn.Linear(12 * 4 * 4, 120), nn.ReLU(), nn.BatchNorm1d(120),
        nn.Linear(120, 60), nn.ReLU(),
        nn.Linear(60, 10),
    )


def cpu_seconds() -> float:
    """User + system CPU of this process and of its children that have ended (DataLoader workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def loop_a(args, root: Path, device: torch.device, mean: float, std: float) -> Result:
    """The classic loop: DataLoader over per-sample ToTensor + Normalize, `.item()` every batch."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    start, cpu = time.perf_counter(), cpu_seconds()
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((mean,), (std,))])
    train_set = datasets.FashionMNIST(str(root), train=True, download=False, transform=transform)
    test_set = datasets.FashionMNIST(str(root), train=False, download=False, transform=transform)
    pin = device.type == "cuda"
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                              pin_memory=pin, generator=torch.Generator().manual_seed(args.seed))
    test_loader = DataLoader(test_set, batch_size=args.batch_size, num_workers=args.workers, pin_memory=pin)

    torch.manual_seed(args.seed)
    network = fashion_bn().to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=args.lr)
    times = []
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        network.train()
        total_loss, total_correct = 0.0, 0
        for images, labels in train_loader:
            images, labels = images.to(device), labels.to(device)
            preds = network(images)
            loss = F.cross_entropy(preds, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * images.shape[0]
            total_correct += preds.argmax(dim=1).eq(labels).sum().item()
        network.eval()
        test_loss, test_correct = 0.0, 0
        with torch.no_grad():
            for images, labels in test_loader:
                images, labels = images.to(device), labels.to(device)
                preds = network(images)
                test_loss += F.cross_entropy(preds, labels).item() * images.shape[0]
                test_correct += preds.argmax(dim=1).eq(labels).sum().item()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return Result("a", times, time.perf_counter() - start, cpu_seconds() - cpu, total_loss / len(train_set),
                  test_correct / len(test_set), f"DataLoader, num_workers={args.workers}")


def loop_b(args, root: Path, device: torch.device, mean: float, std: float) -> Result:
    """Device-resident tensors: decode once, slice a randperm, sum metrics on the device."""
    from torchvision import datasets

    start, cpu = time.perf_counter(), cpu_seconds()

    def decode(train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        split = datasets.FashionMNIST(str(root), train=train, download=False)
        x = split.data.unsqueeze(1).to(device).float().div_(255).sub_(mean).div_(std)  # (N, 1, 28, 28), as ToTensor
        return x, split.targets.to(device)

    train_x, train_y = decode(True)
    test_x, test_y = decode(False)
    n, bs = len(train_y), args.batch_size

    torch.manual_seed(args.seed)
    network = fashion_bn().to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=args.lr)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    times = []
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        network.train()
        loss_sum = torch.zeros((), device=device)  # the same metrics as modelspec's, summed on the device
        correct = torch.zeros((), dtype=torch.long, device=device)
        order = torch.randperm(n, generator=generator, device=device)
        for i in range(0, n, bs):
            index = order[i : i + bs]
            x, y = train_x.index_select(0, index), train_y.index_select(0, index)
            out = network(x)
            loss = F.cross_entropy(out, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(index)
            correct += (out.argmax(1) == y).sum()
        network.eval()
        test_loss = torch.zeros((), device=device)
        test_correct = torch.zeros((), dtype=torch.long, device=device)
        with torch.no_grad():
            for i in range(0, len(test_y), bs):
                x, y = test_x[i : i + bs], test_y[i : i + bs]
                out = network(x)
                test_loss += F.cross_entropy(out, y) * len(y)
                test_correct += (out.argmax(1) == y).sum()
        # One read per epoch, the only points where the host waits for the device. The same four metrics
        # as modelspec's row (two are not printed here).
        train_loss, _train_accuracy = (loss_sum / n).item(), correct.item() / n
        _test_loss, test_accuracy = (test_loss / len(test_y)).item(), test_correct.item() / len(test_y)
        times.append(time.perf_counter() - t0)
    return Result("b", times, time.perf_counter() - start, cpu_seconds() - cpu, train_loss, test_accuracy, "device tensors")


# --------------------------------------------------------------------------------------------------
# modelspec


def loop_c(args, root: Path, device: torch.device, mean: float, std: float) -> Result:
    from modelspec.load import load_spec
    from modelspec.runner import run_grid

    overrides = [
        "grid={}", "train.network=batch_norm", f"train.optimizer.lr={args.lr}", f"seed={args.seed}",
        f"train.epochs={args.epochs}", f"train.device={device}",
        f"data.root={root}", "data.download=false", "data.val_split=0",
        f"data.batch_size={args.batch_size}", f"data.num_workers={args.workers}", "data.shuffle=true",
        f"data.transforms=[to_tensor, {{normalize: {{mean: [{mean}], std: [{std}]}}}}]",
        f"tracking.dir={root / 'runs'}",
        *args.set,
    ]
    start, cpu = time.perf_counter(), cpu_seconds()
    loaded = load_spec(SPEC, overrides)
    logged: list[str] = []
    result = run_grid(loaded, quiet=True, log=logged.append)
    wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    (name, outcome), = result.outcomes.items()
    if outcome.status != "finished":
        raise SystemExit(f"modelspec's run {name} {outcome.status}: {outcome.reason}")
    rows = outcome.rows
    feed = next((line.split(": ", 2)[-1] for line in logged if line.startswith("data:")), "")
    return Result("c", [row["epoch_duration"] for row in rows], wall, cpu, rows[-1]["loss"],
                  rows[-1]["test_accuracy"], f"run_grid ({feed})" if feed else "run_grid")


# --------------------------------------------------------------------------------------------------
# the command


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per loop and round; the first is not timed")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--train-size", type=int, default=60_000)
    parser.add_argument("--test-size", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=1, help="DataLoader num_workers of loop (a), as in the spec")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch.set_num_threads; 0 keeps torch's own (one per core). One leaves the second "
                        "core to (a)'s DataLoader worker; two threads on a busy 2-core machine swing 3-40 s/epoch")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the loops this many times, the order reversed every other round, and pool "
                        "the timed epochs (steadier figures on a busy machine)")
    parser.add_argument("--loops", default="abc", help="which loops to run, in this order: e.g. 'bc' or 'cba'")
    parser.add_argument("--malloc", choices=["steady", "glibc"], default="steady",
                        help="steady: keep freed memory in glibc's heap (no mmap, no trim), as `modelspec run` "
                        "does, so that no loop's speed depends on what ran before it; glibc: the allocator's defaults")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=50, help="the spec's seed")
    parser.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                        help="an extra override of modelspec's spec, e.g. tracking.histograms=false")
    parser.add_argument("--source-root", type=Path,
                        default=Path(os.environ.get("BENCH_FASHION_ROOT", "/work/shared/data")),
                        help="a folder holding FashionMNIST/raw/ to tile; synthetic images where absent")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="cProfile each loop and print its N costliest functions (by own time)")
    parser.add_argument("--keep", type=Path, default=None, help="write the data and runs here and keep them")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, two epochs: only checks that it runs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.epochs, args.train_size, args.test_size, args.batch_size, args.rounds = 2, 512, 128, 128, 1
    if not args.loops or set(args.loops) - set("abc") or len(set(args.loops)) != len(args.loops):
        parser.error("--loops takes each of the letters a, b, c at most once, e.g. abc or bc")
    if args.threads < 0:
        parser.error("--threads must be 0 (torch's default) or more")
    for name in ("epochs", "batch_size", "train_size", "test_size", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def resolve(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: this machine has no CUDA GPU")
    return torch.device(name)


def warm_up(device: torch.device, batch_size: int) -> None:
    """Pay the one-off costs before any loop is timed: imports, the first optimizer step (torch imports
    its compiler stack lazily there) and the allocator's first large blocks, so that the loop that runs
    first does not carry them for the others."""
    import torch.utils.tensorboard  # noqa: F401  (modelspec's tracker)
    import torchvision.datasets  # noqa: F401

    import modelspec.runner  # noqa: F401

    torch.manual_seed(0)
    network = fashion_bn().to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=0.01)
    x = torch.randn(batch_size, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (batch_size,), device=device)
    for _ in range(2):
        optimizer.zero_grad()
        F.cross_entropy(network(x), y).backward()
        optimizer.step()
    with torch.no_grad():
        network.eval()(x).argmax(1).sum().item()


def run_loop(loop, key: str, args, *rest) -> Result:
    if not args.profile:
        return loop(args, *rest)
    import cProfile
    import pstats

    profile = cProfile.Profile()
    result = profile.runcall(loop, args, *rest)
    print(f"--- ({key}) profile, {args.profile} costliest functions by own time")
    pstats.Stats(profile, stream=sys.stdout).sort_stats("tottime").print_stats(args.profile)
    return result


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPU(s)"


def report(results: dict[str, Result], args, device: torch.device) -> None:
    n = len(next(iter(results.values())).timed)
    print(f"\nseconds per epoch: training pass over {args.train_size} + evaluation over {args.test_size}, "
          f"mean and min of {n} timed epoch(s)" + (" (each call's first epoch not timed)" if args.epochs > 1 else ""))
    print(f"{'loop':<5}{'mean s':>9}{'min s':>9}{'1st s':>9}{'wall/ep':>9}{'cpu/ep':>9}"
          f"{'train loss':>12}{'test acc':>10}{'÷ a':>7}{'÷ b':>7}  how")
    for r in results.values():
        ratios = "".join(f"{r.mean / results[k].mean:>7.2f}" if k in results else f"{'':>7}" for k in "ab")
        calls = len(r.firsts) * args.epochs
        print(f"{r.name:<5}{r.mean:>9.3f}{r.best:>9.3f}{statistics.fmean(r.firsts):>9.3f}{r.wall / calls:>9.3f}"
              f"{r.cpu / calls:>9.3f}{r.train_loss:>12.6f}{r.test_accuracy:>10.4f}{ratios}  {r.note}")
    print("wall/ep and cpu/ep: the whole call (data loading, model building, modelspec's TensorBoard logging and\n"
          "checkpoints, which fall outside its epoch_duration) ÷ epochs; cpu counts (a)'s ended DataLoader workers")
    for base in "ab":
        if "c" in results and base in results:
            c, other, target = results["c"], results[base], TARGETS[f"c/{base}"]
            ratio = c.mean / other.mean
            full = args.batch_size == 1000 and args.train_size == 60_000 and device.type == "cpu"
            verdict = ("met" if ratio <= target else "MISSED") if full else "applies to the full-size CPU run"
            print(f"c/{base} = {ratio:.3f} (of the means; {c.best / other.best:.3f} of the mins)  "
                  f"target <= {target:.2f} on CPU at batch size 1000: {verdict}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    allocator = steady_allocator() if args.malloc == "steady" else "glibc defaults (--malloc glibc)"
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve(args.device)
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench_train_"))
    try:
        origin = build_dataset(work, args.train_size, args.test_size,
                               args.source_root if args.source_root.exists() else None)
        mean, std = normalize_stats(work)
        print(f"data: {work} ({origin}); normalize mean={mean} std={std} in all three loops")
        print(f"device: {device}"
              + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
              + f"; torch {torch.__version__}, {torch.get_num_threads()} thread(s); batch size {args.batch_size}, "
              f"{args.epochs} epoch(s) × {args.rounds} round(s); (a) num_workers={args.workers}"
              + (f"; modelspec --set {' '.join(args.set)}" if args.set else ""))
        warm_up(device, args.batch_size)
        print(f"allocator: {allocator}; before: {load()}", flush=True)
        loops = {"a": loop_a, "b": loop_b, "c": loop_c}
        results: dict[str, Result] = {}
        for round_ in range(args.rounds):
            for key in args.loops if round_ % 2 == 0 else args.loops[::-1]:
                r = run_loop(loops[key], key, args, work, device, mean, std)
                results[key] = results[key].merge(r) if key in results else r
                print(f"  ({key}) epochs {', '.join(f'{t:.2f}' for t in r.epochs)} s; train loss {r.train_loss:.6f}, "
                      f"test acc {r.test_accuracy:.4f}", flush=True)
        print(f"after: {load()}")
        report({k: results[k] for k in "abc" if k in results}, args, device)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
