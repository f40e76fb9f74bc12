"""The CLI as an unlucky operator drives it: random sequences of run, Ctrl-C, SIGTERM, SIGKILL,
resume, two resumes at once, a damaged file and export, on one tiny grid.

After every command: no Python traceback, and an exit code docs/cli.md documents (0, 1, 2, 130,
143; -9 where the test itself sent SIGKILL). At the end of each sequence, resumes until the grid is
done must give the rows and weights of the same grid left alone. `MODELSPEC_CLI_FUZZ` sets the number
of sequences (default 3; each is a dozen child processes).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import time
from pathlib import Path

import pytest

from _reliability import TINY, child, finish, outcome, same

SEQUENCES = int(os.environ.get("MODELSPEC_CLI_FUZZ", "3"))
STEPS = 6
SPEC = TINY.replace("size: 240", "size: 1200").replace("epochs: 2", "epochs: 3")
DOCUMENTED = {0, 1, 2, 130, 143}
# Files a user or a crash may damage, and what to do to them.
TARGETS = ["*/run.json", "results.json", "results.csv", "*/checkpoint.pt", "spec.json", ".lock"]
DAMAGE = {"delete": None, "garbage": b"garbage{", "list": b"[]", "empty mapping": b"{}", "truncate": "half",
          "one byte": b"a",  # torch's weights-only unpickler: IndexError, which once failed a run for good
          "a zip of another tool": b"PK\x05\x06" + bytes(18)}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reference")
    (folder / "tiny.yaml").write_text(SPEC)
    start = time.perf_counter()
    done = finish(["run", "tiny.yaml", "-q", "--set", "tracking.dir=ref"], folder)
    assert done.returncode == 0, done.stderr
    return outcome(_grid(folder / "ref")), time.perf_counter() - start


def _grid(tracking: Path) -> Path | None:
    found = [p for p in (tracking / "tiny").glob("[!.]*") if p.is_dir()] if (tracking / "tiny").is_dir() else []
    assert len(found) <= 1, f"a second grid folder appeared: {found}"
    return found[0] if found else None


class Sequence:
    def __init__(self, cwd: Path, rng: random.Random, seconds: float):
        self.cwd, self.rng, self.seconds = cwd, rng, seconds
        self.log: list[str] = []

    @property
    def folder(self) -> Path | None:
        return _grid(self.cwd / "out")

    def _args(self) -> list[str]:
        folder = self.folder
        return ["resume", str(folder.relative_to(self.cwd))] if folder else \
            ["run", "tiny.yaml", "--set", "tracking.dir=out"]

    def _check(self, what: str, code: int, out: str, err: str, sent_kill: bool = False) -> None:
        self.log.append(f"{what}: exit {code}")
        assert "Traceback" not in out + err, f"{self.log}\n{err}"
        assert code in DOCUMENTED or (sent_kill and code == -signal.SIGKILL), f"{self.log}\n{err}"

    def train(self, sig: int | None) -> None:
        args = self._args()
        process = child(args, self.cwd)
        if sig is not None:
            time.sleep(self.rng.uniform(0.1, 1.0) * self.seconds)
            process.send_signal(sig)
        out, err = process.communicate(timeout=300)
        name = {None: "", signal.SIGINT: "+SIGINT", signal.SIGTERM: "+SIGTERM", signal.SIGKILL: "+SIGKILL"}[sig]
        self._check(f"{args[0]}{name}", process.returncode, out, err, sig == signal.SIGKILL)
        if process.returncode == 2:
            self._restart_if_asked(err)

    def _restart_if_asked(self, err: str) -> None:
        """A damaged checkpoint is a clear error that says which run to start over; do as it says."""
        match = re.search(r"--restart-run (\S+)`", err)
        assert match, f"{self.log}\nexit 2 without a way forward:\n{err}"
        done = finish(["resume", str(self.folder), "-q", "--restart-run", match.group(1)], self.cwd)
        self._check("resume --restart-run", done.returncode, done.stdout, done.stderr)

    def two_at_once(self) -> None:
        if self.folder is None:
            return self.train(None)
        first, second = (child(["resume", str(self.folder), "-q"], self.cwd) for _ in range(2))
        results = [(p.returncode, *p.communicate(timeout=300)) for p in (first, second)]
        results = [(p.returncode, out, err) for p, (_, out, err) in zip((first, second), results)]
        for code, out, err in results:
            self._check("concurrent resume", code, out, err)
            if code == 2 and "in use by process" not in err:
                self._restart_if_asked(err)

    def damage(self) -> None:
        if self.folder is None:
            return
        files = [p for pattern in TARGETS for p in self.folder.glob(pattern)]
        if not files:
            return
        path, (how, content) = self.rng.choice(files), self.rng.choice(list(DAMAGE.items()))
        if content is None:
            path.unlink()
        elif content == "half":
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        else:
            path.write_bytes(content)
        self.log.append(f"damage {path.relative_to(self.folder)}: {how}")

    def export(self) -> None:
        if self.folder is None:
            return
        done = finish(["export", str(self.folder), "--best", "--format", "torchscript", "--out", "exported"],
                      self.cwd)
        self._check("export --best", done.returncode, done.stdout, done.stderr)

    def finish_grid(self) -> None:
        for _ in range(4):
            args = self._args()
            done = finish(args + ["-q"] if args[0] == "resume" else args, self.cwd)
            self._check(f"final {args[0]}", done.returncode, done.stdout, done.stderr)
            if done.returncode == 0:
                return
            if done.returncode == 2:
                self._restart_if_asked(done.stderr)
        raise AssertionError(f"the grid did not finish: {self.log}")


@pytest.mark.slow
def test_random_operator_sequences_end_in_the_undisturbed_grid(reference, tmp_path):
    expected, seconds = reference
    rng = random.Random(int(os.environ.get("MODELSPEC_CLI_FUZZ_SEED", "14")))
    actions = ["run", "sigint", "sigterm", "sigkill", "sigkill", "damage", "damage", "export", "two"]
    findings = []
    for index in range(SEQUENCES):
        cwd = tmp_path / f"seq{index}"
        cwd.mkdir()
        (cwd / "tiny.yaml").write_text(SPEC)
        sequence = Sequence(cwd, rng, seconds)
        for action in rng.choices(actions, k=STEPS):
            if action == "damage":
                sequence.damage()
            elif action == "export":
                sequence.export()
            elif action == "two":
                sequence.two_at_once()
            else:
                sig = {"run": None, "sigint": signal.SIGINT, "sigterm": signal.SIGTERM, "sigkill": signal.SIGKILL}
                sequence.train(sig[action])
        sequence.finish_grid()
        assert same(outcome(sequence.folder), expected), f"sequence {index} differs: {sequence.log}"
        findings.append(sequence.log)
    print(f"\n{len(findings)} CLI sequences, each ending in the undisturbed grid:")
    for log in findings:
        print("  " + "; ".join(log))
