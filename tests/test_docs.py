"""The documentation: the generated reference is the code's, the site builds strictly, and the README
stays a short front page whose links land on real pages."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _specs import REPO

DOCS = REPO / "docs"
README = (REPO / "README.md").read_text()


def run(args: list[str], cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def gen():
    """docs/gen_reference.py as a module, with one fresh generation of the reference."""
    spec = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_reference"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    module.fresh = module.generate()
    return module


def test_the_committed_reference_is_what_the_code_generates(gen):
    changed = gen.differences(gen.fresh, DOCS / "reference")
    assert not changed, f"docs/reference is stale ({', '.join(changed)}): run `python docs/gen_reference.py`"


def test_a_stale_reference_fails_the_check_and_says_how_to_fix_it(gen, tmp_path, monkeypatch, capsys):
    """The check compares against a fresh generation: a page edited by hand, or one no kind makes, is
    named, and the command to run is given."""
    for name, text in gen.fresh.items():
        (tmp_path / name).write_text(text)
    monkeypatch.setattr(gen, "generate", lambda: gen.fresh)
    assert gen.main(["--check"], tmp_path) == 0
    (tmp_path / "metrics.md").write_text(gen.fresh["metrics.md"].replace("## accuracy", "## acc"))
    (tmp_path / "old.md").write_text("# a page no kind makes\n")
    assert gen.main(["--check"], tmp_path) == 1
    out = capsys.readouterr().out
    assert "metrics.md, old.md" in out and "run `python docs/gen_reference.py`" in out
    assert gen.main([], tmp_path) == 0  # regenerating puts it right
    assert gen.differences(gen.fresh, tmp_path) == []


@pytest.mark.slow  # a fresh interpreter imports torch and every command: 6-20 s
def test_the_script_checks_from_the_command_line():
    """What CI and a contributor run: `python docs/gen_reference.py --check`, from any folder."""
    result = run([sys.executable, str(DOCS / "gen_reference.py"), "--check"], cwd=DOCS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_reference_has_every_kind_with_its_described_fields():
    from modelspec.spec.layers import LAYER_TYPES
    from modelspec.spec.losses import LOSSES
    from modelspec.spec.metrics import METRICS

    def headings(page: str) -> set[str]:
        return set(re.findall(r"^## (.+)$", (DOCS / "reference" / page).read_text(), flags=re.MULTILINE))

    assert set(LAYER_TYPES) <= headings("layers.md")
    assert set(LOSSES) <= headings("losses.md") and set(METRICS) <= headings("metrics.md")
    assert {"validate", "summary", "schema", "run", "resume", "export", "predict", "evaluate"} <= headings("cli.md")
    import modelspec

    assert set(modelspec.__all__) <= headings("python-api.md")
    conv = (DOCS / "reference" / "layers.md").read_text().split("\n## conv\n")[1].split("\n## ")[0]
    row = next(line for line in conv.splitlines() if line.startswith("| `out_channels` |"))
    assert "required" in row and LAYER_TYPES["conv"].model_fields["out_channels"].description in row


def test_mkdocs_builds_the_site_strictly(tmp_path):
    """Strict: a broken link or anchor, or a page left out of the nav, fails the build."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    result = run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")])
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "reference" / "layers" / "index.html").is_file()


def test_the_readme_links_into_the_docs_and_every_link_resolves():
    links = re.findall(r"\]\(([^)\s]+)\)", README)
    local = [link for link in links if not re.match(r"[a-z]+://", link)]
    into_docs = [link for link in local if link.startswith("docs/")]
    assert len(into_docs) >= 8, into_docs
    for link in local:
        path, _, anchor = link.partition("#")
        target = REPO / path if path else REPO / "README.md"
        assert target.is_file(), link
        if anchor and target.suffix == ".md":
            assert anchor in anchors(target.read_text()), link


def anchors(markdown: str) -> set[str]:
    """The ids GitHub and MkDocs give the headings (they agree on these plain ones)."""
    found = set()
    for heading in re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", markdown, flags=re.DOTALL), flags=re.MULTILINE):
        text = re.sub(r"[^\w\s-]", "", heading).strip().lower()
        found.add(re.sub(r"[-\s]+", "-", text))
    return found


def test_the_readme_stays_a_front_page():
    assert len(README.splitlines()) < 400
    assert 'pip install -e ".[dev]"' in README and 'pytest -q -m "not slow"' in README


def test_the_readme_says_what_each_example_spec_reads():
    """Every spec in specs/ has its row in the README's table of data: its kind and where it reads."""
    from modelspec.load import load_spec

    table = README[README.index("| spec | data kind |"):]
    table = table[:table.index("\n\n")]
    rows = {name: row for row in table.splitlines()[2:] for name in re.findall(r"`(\w+)`", row.split("|")[1])}
    for path in sorted((REPO / "specs").glob("*.yaml")):
        assert path.stem in rows, f"{path.name} has no row in the README's table of example specs"
        dataset = load_spec(path).spec.data.dataset
        assert f"| `{dataset}` |" in rows[path.stem], (path.name, dataset)
