"""One run on several processes: torchrun + DDP on the CPU (gloo), compared with one process.

The slow tests start `torchrun --nproc-per-node=2 -m modelspec` on 127.0.0.1 (its rendezvous binds
a free port): the same weights as one process on the same global batch (with and without synchronised
batch norm, with a last batch that splits unevenly), evaluation metrics equal to one process's, one
writer, Ctrl-C and a rank killed with SIGKILL, after which the run resumes to the undisturbed result.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from modelspec.cli.main import app
from modelspec.data.feeds import LoaderFeed, Shard, TensorFeed
from modelspec.errors import SpecError
from modelspec.load import loads_spec
from modelspec.runner.distributed import RENDEZVOUS, SINGLE, Ranks, check_batch_sizes

from _specs import REPO, write_spec

runner = CliRunner()

# 339 samples, 68 for validation: 271 to train in batches of 32, the last of 15 (8 + 7 over two
# processes: the share weighting must make their averaged gradient the batch's).
SPEC = """\
name: ddp
seed: 3
data:
  dataset: synthetic
  input_shape: [1, 6, 6]
  num_classes: 4
  size: 339
  test_size: 101
  batch_size: 32
  eval_batch_size: 15
  val_split: 0.2
  transforms: []
networks:
  mlp:
    - flatten
    - linear: {out_features: 16}
    - relu
    - linear: {out_features: num_classes}
  bn:
    - flatten
    - linear: {out_features: 16}
    - batchnorm
    - relu
    - linear: {out_features: num_classes}
train:
  epochs: 3
  optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
  deterministic: true
  sync_batchnorm: true
  metrics: [accuracy, f1, auroc]
  checkpoint_every: 1  # the signal tests wait for a run's first checkpoint
grid:
  train.network: [mlp, bn]
export:
  formats: [torchscript]
  after_run: true
"""


# --------------------------------------------------------------------------------------------------
# the split of each global batch (no processes)


@pytest.mark.parametrize("shuffle", [True, False])
def test_ranks_together_see_each_single_process_batch_exactly_once(shuffle):
    x, y = torch.arange(23.0).view(23, 1), torch.arange(23)
    single = TensorFeed(x, y, 6, shuffle, False, torch.Generator().manual_seed(1))
    shards = [TensorFeed(x, y, 6, shuffle, False, torch.Generator().manual_seed(1)).sharded(Shard(r, 4))
              for r in range(4)]
    per_rank = [list(feed.batches()) for feed in shards]
    for b, (_, whole) in enumerate(single.batches()):
        parts = [batches[b][1] for batches in per_rank]
        assert torch.equal(torch.cat(parts), whole)  # in order, nothing doubled, nothing padded
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
        # DDP averages the ranks' gradients: weighted by its share, each sample counts 1/len(whole).
        for feed, part in zip(shards, parts):
            assert feed.share(b) / (4 * len(part)) == pytest.approx(1 / len(whole))


def test_an_evaluation_batch_smaller_than_the_world_leaves_some_ranks_nothing():
    x, y = torch.zeros(5, 1), torch.arange(5)
    parts = [[b[1].tolist() for b in TensorFeed(x, y, 4, False, False, None).sharded(Shard(r, 3)).batches()]
             for r in range(3)]
    assert parts == [[[0, 1], [4]], [[2]], [[3]]]


def test_the_dataloader_path_shards_as_the_tensor_path_does():
    x, y = torch.randn(19, 2), torch.arange(19)
    dataset = torch.utils.data.TensorDataset(x, y)
    for rank in range(2):
        tensors = TensorFeed(x, y, 4, True, False, torch.Generator().manual_seed(5)).sharded(Shard(rank, 2))
        loader = LoaderFeed(dataset, torch.arange(19), 4, True, False, torch.Generator().manual_seed(5),
                            torch.device("cpu"), 0, False).sharded(Shard(rank, 2))
        assert [b[1].tolist() for b in loader.batches(skip=1)] == [b[1].tolist() for b in tensors.batches(skip=1)]


def test_a_last_training_batch_smaller_than_the_world_is_refused_before_training():
    x, y = torch.zeros(33, 1), torch.arange(33)  # batches of 16: the last has 1 sample for 2 processes
    with pytest.raises(SpecError, match="the last training batch has 1 sample") as caught:
        Ranks(0, 2).shard_feeds((TensorFeed(x, y, 16, True, False, None), None, None))
    assert caught.value.issues[0].path == ("data", "drop_last")
    kept = Ranks(1, 2).shard_feeds((TensorFeed(x, y, 16, True, True, None), None, None))[0]  # drop_last
    assert [len(b[1]) for b in kept.batches()] == [8, 8]


def test_a_checkpoint_resumes_only_with_the_number_of_processes_that_wrote_it():
    two = {"world": 2, "ranks": [{"rng": "r0", "rng_now": None, "metrics": None},
                                 {"rng": "r1", "rng_now": None, "metrics": None}], "rng": "r0", "epoch": 2}
    assert Ranks(1, 2).local_checkpoint(two)["rng"] == "r1"  # its own random states
    with pytest.raises(SpecError, match="written by 2 process\\(es\\); it resumes exactly only with as many, not 1"):
        SINGLE.local_checkpoint(two)
    with pytest.raises(SpecError, match="written by 1 process"):
        Ranks(0, 2).local_checkpoint({"rng": "r0", "epoch": 2})


# --------------------------------------------------------------------------------------------------
# torchrun


def _torchrun(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "MODELSPEC_CACHE": str(cwd / "cache"), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", *RENDEZVOUS, "--nproc-per-node=2", "-m", "modelspec", *args]
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out + err


def _outcome(tracking_dir: Path):
    (folder,) = (tracking_dir / "ddp").iterdir()
    rows = json.loads((folder / "results.json").read_text())["rows"]
    rows = [{k: v for k, v in row.items() if "duration" not in k} for row in rows]
    weights = {p.parent.name: torch.load(p, weights_only=True)["state_dict"] for p in folder.glob("*/weights.pt")}
    return rows, weights


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """The grid trained by two processes, left alone."""
    folder = tmp_path_factory.mktemp("ddp")
    write_spec(folder, SPEC)
    code, output = _finish(_torchrun(["run", "spec.yaml", "-q", "--set", "tracking.dir=out"], folder))
    assert code == 0, output
    return folder, _outcome(folder / "out")


@pytest.mark.slow
def test_two_processes_train_the_weights_of_one_on_the_same_global_batch(ddp_run, tmp_path, monkeypatch):
    folder, (rows, weights) = ddp_run
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MODELSPEC_CACHE", str(tmp_path / "cache"))
    write_spec(tmp_path, SPEC)
    result = runner.invoke(app, ["run", "spec.yaml", "-q", "--set", "tracking.dir=out"])
    assert result.exit_code == 0, result.output
    single_rows, single_weights = _outcome(tmp_path / "out")

    assert sorted(weights) == ["00_network=mlp", "01_network=bn"]
    for run in weights:  # no batch norm, and batch norm synchronised over the processes
        for key, value in single_weights[run].items():
            assert torch.allclose(weights[run][key].float(), value.float(), atol=1e-6, rtol=0), (run, key)
    for ddp_row, single_row in zip(rows, single_rows, strict=True):
        assert ddp_row.keys() == single_row.keys()
        for key, value in single_row.items():
            assert ddp_row[key] == (pytest.approx(value, abs=1e-5) if isinstance(value, float) else value), key

    # Rank 0 alone wrote: one grid folder, and checkpoints that hold both ranks' random states.
    (grid,) = (folder / "out" / "ddp").iterdir()
    checkpoint = torch.load(grid / "01_network=bn" / "checkpoint.pt", weights_only=True)
    assert checkpoint["world"] == 2 and len(checkpoint["ranks"]) == 2
    assert not torch.equal(checkpoint["ranks"][0]["rng"]["torch"], checkpoint["ranks"][1]["rng"]["torch"])
    # The export after the run: the network with plain batch norms again, scripted and verified.
    report = json.loads((grid / "01_network=bn" / "export" / "export_report.json").read_text())
    assert report["passed"] and report["formats"]["torchscript"]["method"] == "script"


@pytest.mark.slow
def test_ctrl_c_and_a_killed_rank_stop_every_rank_and_the_run_resumes_exactly(ddp_run, tmp_path):
    _, expected = ddp_run
    write_spec(tmp_path, SPEC)

    # Ctrl-C reaches the launcher of `--nproc 2`: both ranks stop at one batch, one checkpoint, a hint.
    env = {**os.environ, "MODELSPEC_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-m", "modelspec", "run", "spec.yaml", "--nproc", "2",
                                "--set", "tracking.dir=out"], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(tmp_path / "out", "00_*/checkpoint.pt")  # the first epoch is done: the signal lands mid-run
    process.send_signal(signal.SIGINT)
    code, output = _finish(process, timeout=90)
    (grid,) = (tmp_path / "out" / "ddp").iterdir()
    assert code == 130, output
    assert f"stopped; continue with: modelspec resume {grid.relative_to(tmp_path)} --nproc 2" in output

    # SIGKILL of rank 1 in the resumed grid: rank 0 must not wait for it forever.
    process = _torchrun(["resume", str(grid), "-q"], tmp_path)
    _wait_for(tmp_path / "out", "01_*/checkpoint.pt")
    os.kill(_worker(process.pid, rank=1), signal.SIGKILL)
    code, output = _finish(process, timeout=90)
    assert code != 0, output

    code, output = _finish(_torchrun(["resume", str(grid), "-q"], tmp_path))
    assert code == 0, output
    rows, weights = _outcome(tmp_path / "out")
    assert rows == expected[0]
    assert weights.keys() == expected[1].keys()
    assert all(torch.equal(weights[run][k], expected[1][run][k]) for run in weights for k in weights[run])


def _wait_for(folder: Path, pattern: str) -> None:
    deadline = time.time() + 120
    while not list(folder.glob(f"ddp/*/{pattern}")) and time.time() < deadline:
        time.sleep(0.05)


def _worker(agent: int, rank: int) -> int:
    """The pid of torchrun's worker process of this rank."""
    for pid in Path(f"/proc/{agent}/task/{agent}/children").read_text().split():
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        if f"RANK={rank}".encode() in environ:
            return int(pid)
    raise AssertionError(f"no worker of rank {rank} under torchrun ({agent})")


def test_a_batch_size_that_does_not_split_over_the_processes_is_a_spec_error():
    loaded = loads_spec(SPEC.replace("batch_size: 32", "batch_size: 33"), "spec.yaml")
    check_batch_sizes(loaded, Ranks(0, 1))  # one process: any size
    with pytest.raises(SpecError) as caught:
        check_batch_sizes(loaded, Ranks(0, 2))
    assert str(caught.value).startswith("spec.yaml:")
    assert "data.batch_size: batch_size 33 is the global batch and must split evenly over 2 processes" in str(caught.value)


# --------------------------------------------------------------------------------------------------
# evaluation on two processes (torch.multiprocessing, gloo): the same metrics as one


def _evaluation(ranks: Ranks) -> tuple[dict[str, float], torch.Tensor]:
    """The `bn` network, freshly seeded, evaluated on the validation split by these ranks."""
    from modelspec.compile import build_from_shapes
    from modelspec.data import make_feeds, prepare_data
    from modelspec.runner.loop import Parts, resolve_run, evaluate
    from modelspec.runner.metrics import MetricSet

    plan = loads_spec(SPEC, "spec.yaml").runs()[1]
    spec, cpu = plan.spec, torch.device("cpu")
    prepared = prepare_data(spec.data, spec.seed, cpu, log=lambda _: None)
    shapes, task = resolve_run(plan, prepared)
    torch.manual_seed(0)
    model = build_from_shapes(shapes)
    val = ranks.shard_feeds(make_feeds(prepared, spec.data, None, spec.seed))[1]
    metrics = MetricSet(task, cpu, confusion=True)
    parts = Parts(spec, task, model, model, spec.train.loss.build(), cpu, Path("."), [], ranks)
    return evaluate(parts, model, val, metrics), metrics.confusion_counts()


def _evaluate_on_rank(rank: int, world: int, store: str, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        result = _evaluation(Ranks(rank, world))
        if rank == 0:
            torch.save(result, out)
        dist.barrier()  # neither process tears gloo down while the other still uses it
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_evaluation_on_two_processes_gives_the_metrics_of_one(tmp_path):
    # 68 validation samples in batches of 15: the last (8) splits 4/4, the others 8/7.
    out = tmp_path / "ddp.pt"
    torch.multiprocessing.spawn(_evaluate_on_rank, args=(2, str(tmp_path / "store"), str(out)), nprocs=2)
    values, counts = torch.load(out, weights_only=True)
    expected, expected_counts = _evaluation(SINGLE)
    assert torch.equal(counts, expected_counts) and counts.sum() == 68  # every sample once, none padded
    assert {k: v for k, v in values.items() if k != "loss"} == {k: v for k, v in expected.items() if k != "loss"}
    assert values["loss"] == pytest.approx(expected["loss"], rel=1e-6)  # float sums in another order


def test_a_lost_peers_reason_prints_in_the_results_table():
    # gloo's messages start with "[.../pair.cc:545]", which rich would read as a closing tag.
    from rich.console import Console

    from modelspec.cli.run import _results_table
    from modelspec.runner.grid import GridResult
    from modelspec.runner.loop import RunOutcome

    reason = "process 0 of 2 stopped the run: RuntimeError: [/gloo/transport/tcp/pair.cc:545] Read error"
    result = GridResult(Path("runs/x"), {"lr=[0.1]": RunOutcome("stopped", [], reason)})
    console = Console(width=400, record=True)
    console.print(_results_table(result))
    text = console.export_text()
    assert reason in text and "lr=[0.1]" in text
