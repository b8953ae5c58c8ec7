"""Regenerate the command transcripts in README.md and docs/*.md from real runs of this checkout.

Each transcript sits between ``<!-- regen:NAME -->`` and ``<!-- /regen -->``. NAME is a key of
BLOCKS (commands run in order in a work folder; the block shows ``$ command`` and its stdout,
and its stderr too where the step says so), of TABLES (the Markdown table of a block's output,
rendered) or of FACTS (the machine and the time of the quickstart that made the numbers).

  python docs/regen.py                # default size, in a new work folder; rewrites the blocks
  python docs/regen.py --work DIR     # the same in DIR; a finished quickstart there is reused
  python docs/regen.py --check        # CI: quick size; fails if a command fails or a block's
                                      # output differs from the page in anything but numbers

The commands run in the work folder with the relative paths a user types at the repository root
(``recipes`` is linked in), and the work folder's path is cut from their output. A finished
quickstart in the work folder (its report.md exists) is not trained again: the current code
reprints its closing table from its runs (``facebench.cli.quickstart.summary``), and the facts
keep the time it took; use a new work folder after changing training. Everything else in the
folder but the synthetic data is cleared before the commands run. Exit status: 0 done (or, with
--check, every block matches), 1 a command failed or a block differs, 2 a page or the work
folder is unusable.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MARKER = ".regen"  # the file that makes a folder a regen work folder (which regen may clear)
STATE = "regen.json"  # the quickstart's size, time and machine, kept beside it
#: what a rerun keeps in the work folder (the quickstart and its state only if it finished)
KEPT = {MARKER, STATE, "facebench-data", "quickstart"}


@dataclass(frozen=True)
class Step:
    """One command; ``{synth}``, ``{quick}`` and ``{train}`` are filled in per size."""

    command: str
    stderr: bool = False  # show its stderr too, in place (it carries a line worth reading)


#: What differs between the two sizes: the quickstart's size flag, the synthetic data folder it
#: makes, and the overrides that point a synth recipe at the quick data.
SIZES = {
    "default": {"quick": "", "synth": "facebench-data/synth", "train": ""},
    "quick": {
        "quick": " --quick",
        "synth": "facebench-data/synth-quick",
        "train": " --set data.train=synth-quick --set eval.bins=[] --set train.batch_size=32",
    },
}

MODEL = "quickstart/runs/bce_u/model.pt"  # the quickstart's bce_u model: the table's numbers
ARCFACE = "quickstart/runs/arcface/model.pt"
BINS = "--bin {synth}/synth_val.bin --bin {synth}/synth_hard.bin"
TRAIN = "recipes/synth/bce_u.yaml --data facebench-data --set train.epochs=1 --no-progress"

BLOCKS: dict[str, list[Step]] = {
    "quickstart": [Step("facebench quickstart{quick} --out quickstart")],
    "help": [Step("facebench --help")],
    "data-info": [Step("facebench data info {synth}")],
    "train": [Step(f"facebench train {TRAIN} --out runs/bce_u{{train}}")],
    "train-ddp": [
        Step(f"torchrun --nproc_per_node=2 -m facebench train {TRAIN} --out runs/ddp{{train}}")
    ],
    "verify": [Step(f"facebench verify --model {MODEL} {BINS} --out reports/bce_u --no-progress")],
    "uniform": [
        Step(f"facebench uniform --model {MODEL} --pack {{synth}}/test.rec --out reports/bce_u")
    ],
    "transfer": [
        Step(
            f"facebench verify --model {MODEL} {BINS} --target-far 0.01 --out reports/far "
            "--no-progress"
        ),
        Step("facebench report reports/far --out report"),
        Step("sed -n '/^Accuracy at the global threshold/,$p' report/report.md"),
    ],
    "export": [
        Step(f"facebench embed --model {MODEL} --bin {{synth}}/synth_val.bin --out emb/val.npy"),
        Step(f"facebench export --model {MODEL} --onnx bce_u.onnx --bin {{synth}}/synth_val.bin"),
        Step(
            "facebench verify --model bce_u.onnx --bin {synth}/synth_val.bin --out reports/onnx "
            "--no-progress",
            stderr=True,
        ),
    ],
    "search": [
        Step(f"facebench embed --model {MODEL} --pack {{synth}}/test.rec --out emb/gallery.npy"),
        Step("facebench index build --embeddings emb/gallery.npy --out gallery.index"),
        Step(
            "facebench search --index gallery.index --embeddings emb/val.npy "
            "--threshold-from reports/bce_u/synth_val.json --far 0.01 --top-k 3 --out search.csv"
        ),
    ],
    "identify": [
        Step(f"facebench embed --model {MODEL} --pack {{synth}}/train.rec --out emb/train.npy"),
        Step(f"facebench embed --model {MODEL} --bin {{synth}}/synth_hard.bin --out emb/hard.npy"),
        Step(
            "facebench identify --gallery emb/gallery.npy --probes emb/train.npy "
            "--out reports/bce_u"
        ),
        Step(
            "facebench identify --gallery emb/gallery.npy --probes emb/train.npy "
            "--distractors emb/hard.npy --out reports/distractors"
        ),
        Step(
            "facebench identify --gallery emb/gallery.npy --probes emb/train.npy "
            "--distractors emb/hard.npy --factory IVF16,Flat --search-params nprobe=2 "
            "--out reports/ivf"
        ),
    ],
    "compare": [
        Step(f"facebench verify --model {ARCFACE} {BINS} --out reports/arcface --no-progress"),
        Step(
            f"facebench uniform --model {ARCFACE} --pack {{synth}}/test.rec --out reports/arcface"
        ),
        Step(
            "facebench report reports/bce_u reports/arcface --name bce_u --name arcface "
            "--out comparison"
        ),
        Step("sed -n '/^| metric/,/^$/p' comparison/report.md"),
    ],
    "distributed": [
        Step(
            f"torchrun --nproc_per_node=2 -m facebench embed --model {MODEL} --pack {{synth}} "
            "--out emb/ddp.npy --no-progress"
        ),
        Step(f"facebench embed --model {MODEL} --pack {{synth}} --out emb/one.npy --no-progress"),
        Step(
            "python -c \"import numpy as n; print(n.array_equal(n.load('emb/ddp.npy'), "
            "n.load('emb/one.npy')))\" && cmp emb/ddp.json emb/one.json && echo sidecars equal"
        ),
        Step(
            f"torchrun --nproc_per_node=2 -m facebench verify --model {MODEL} {BINS} "
            "--out reports/ddp --no-progress"
        ),
        Step(
            "for f in synth_val synth_hard transfer; do "
            "cmp reports/ddp/$f.json reports/bce_u/$f.json || exit 1; done && "
            "echo the reports equal those of reports/bce_u"
        ),
    ],
    "study": [Step("facebench study --idx /usr/share/datasets/fashion-mnist --quick --out study")],
}

#: Blocks shown as Markdown rather than as a transcript: the table of a transcript's output.
TABLES = {"quickstart-table": "quickstart"}

#: Facts about the quickstart that made the numbers (inline but for the log), written at the
#: default size only.
FACTS = ("machine", "quickstart-time", "quickstart-log")

BLOCK = re.compile(r"<!-- regen:(?P<name>[\w-]+) -->(?P<body>.*?)<!-- /regen -->", re.S)
OPENING = re.compile(r"<!-- regen:[\w-]+ -->")
NUMBER = re.compile(r"\d[\d,.]*(?:e[-+]?\d+)?")
PROGRESS_BAR = re.compile(r"\d+%\|")


class RegenError(Exception):
    """A page or a work folder that regen cannot use; the message says which."""


class CommandFailed(RegenError):
    """A command of a block failed; the message gives its exit status and last lines."""


def blocks(text: str, where: str) -> list[re.Match]:
    """The regen blocks of a page, in order; an opening marker without its end is an error."""
    found = list(BLOCK.finditer(text))
    if len(OPENING.findall(text)) != len(found):
        raise RegenError(f"{where}: a <!-- regen:NAME --> marker without its <!-- /regen -->")
    return found


def replace_blocks(text: str, bodies: dict[str, str], where: str) -> str:
    """The page with every block whose name is in ``bodies`` given that body."""
    blocks(text, where)
    return BLOCK.sub(
        lambda m: (
            m.group(0)
            if m["name"] not in bodies
            else f"<!-- regen:{m['name']} -->{bodies[m['name']]}<!-- /regen -->"
        ),
        text,
    )


def transcript_body(transcript: str) -> str:
    """A transcript as the body of a block: a fenced code block on lines of its own."""
    return f"\n```\n{transcript}\n```\n"


def table_body(transcript: str) -> str:
    """The Markdown table in a transcript's output, as the body of a block: set off by blank
    lines, so that it renders as a table between the markers."""
    table = "\n".join(line for line in transcript.splitlines() if line.startswith("|"))
    return f"\n\n{table}\n\n"


def command_bodies(transcripts: dict[str, str]) -> dict[str, str]:
    """The body of every block made from the commands: BLOCKS and TABLES."""
    bodies = {name: transcript_body(text) for name, text in transcripts.items()}
    for name, source in TABLES.items():
        if source in transcripts:
            bodies[name] = table_body(transcripts[source])
    return bodies


def mask(text: str) -> str:
    """What --check compares: every number becomes ``#``, and a Markdown table row after the
    first of its table keeps only its first cell and its number of cells (the rest are values:
    a verdict such as "yes"/"**no**" changes with the size, a row or a column does not)."""
    lines = []
    in_table = False
    for line in text.splitlines():
        row = line.lstrip().startswith("|")
        if row and in_table:
            cells = line.strip().strip("|").split("|")
            line = f"|{cells[0]}|" + " … |" * (len(cells) - 1)
        lines.append(NUMBER.sub("#", line))
        in_table = row
    return "\n".join(lines)


def without_bars(text: str) -> str:
    """A command's output without its progress bars (each line as last drawn, bars dropped)."""
    lines = (line.rsplit("\r", 1)[-1].rstrip() for line in text.splitlines())
    return "\n".join(line for line in lines if not PROGRESS_BAR.search(line)).strip("\n")


def machine() -> str:
    """The CPU (model, widest vector instructions), its cores and the torch version."""
    import torch

    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", info, re.M)
    flags = set((re.search(r"^flags\s*:\s*(.+)$", info, re.M) or [None, ""])[1].split())
    isa = [name for flag, name in (("avx512f", "AVX-512"), ("amx_tile", "AMX")) if flag in flags]
    if not isa and "avx2" in flags:
        isa = ["AVX2"]
    cpu = model[1].strip() if model else "an unknown CPU"
    extras = f" with {' and '.join(isa)}" if isa else ""
    return f"{cpu}{extras}, {os.cpu_count()} cores, torch {torch.__version__}"


def minutes(seconds: float) -> str:
    """``5m14s``."""
    return f"{int(seconds // 60)}m{round(seconds % 60):02d}s"


class Work:
    """The work folder: the commands' current folder, kept between runs of regen."""

    def __init__(self, path: Path, size: str) -> None:
        self.path = path.absolute()
        self.size = size
        if self.path.exists() and any(self.path.iterdir()) and not (self.path / MARKER).exists():
            raise RegenError(
                f"{path}: not a regen work folder (no {MARKER} in it); give a new or empty folder"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / MARKER).write_text("a docs/regen.py work folder: regen may clear it\n")
        state = self.state()
        if self.finished() and state.get("size", size) != size:
            raise RegenError(
                f"{path}: holds a {state['size']}-size quickstart; give another --work for the "
                f"{size} size"
            )
        kept = KEPT if self.finished() else KEPT - {"quickstart", STATE}
        for entry in self.path.iterdir():
            if entry.name in kept:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        (self.path / "recipes").symlink_to(REPO / "recipes")
        self.env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",  # stdout and stderr interleave as written
            "COLUMNS": "100",  # argparse wraps --help to the terminal's width
        }

    def finished(self) -> bool:
        """Whether a quickstart finished here (it writes its folder whole or not at all)."""
        return (self.path / "quickstart" / "report.md").is_file()

    def state(self) -> dict:
        path = self.path / STATE
        return json.loads(path.read_text()) if path.exists() else {}

    def shown(self, step: Step) -> str:
        """The command as the pages show it: at the default size."""
        return step.command.format(**SIZES["default"])

    def run(self, step: Step) -> str:
        """Run one step; its output as the pages show it."""
        command = step.command.format(**SIZES[self.size])
        if command.startswith("facebench quickstart") and self.finished():
            from facebench.cli.quickstart import summary

            report = self.path / "quickstart" / "report.md"
            heads = tuple(json.loads((report.parent / "quickstart.json").read_text())["heads"])
            return self.relative(summary(report, heads))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        proc = subprocess.run(
            ["bash", "-c", command],
            cwd=self.path,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if step.stderr else subprocess.PIPE,
            text=True,
        )
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).splitlines()[-20:])
            raise CommandFailed(f"`{command}` failed with exit status {proc.returncode}:\n{tail}")
        if command.startswith("facebench quickstart"):
            if not self.finished():
                raise CommandFailed(f"`{command}` wrote no quickstart/report.md")
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = sum(getattr(after, f) - getattr(before, f) for f in ("ru_utime", "ru_stime"))
            state = {
                "size": self.size,
                "wall_s": round(time.perf_counter() - started, 1),
                "cpu_s": round(cpu, 1),
                "machine": machine(),
                "log": self.relative(without_bars(proc.stderr)),
            }
            (self.path / STATE).write_text(json.dumps(state, indent=1) + "\n")
        output = without_bars(proc.stdout) if step.stderr else proc.stdout
        return self.relative(output.rstrip())

    def relative(self, text: str) -> str:
        """The text with this folder's path cut out and the quick data shown as the default's."""
        text = text.replace(f"{self.path}{os.sep}", "")
        return text.replace(SIZES[self.size]["synth"], SIZES["default"]["synth"])

    def transcripts(self) -> dict[str, str]:
        """Every block's transcript, the commands run in order."""
        result = {}
        for name, steps in BLOCKS.items():
            started = time.perf_counter()
            result[name] = "\n".join(f"$ {self.shown(s)}\n{self.run(s)}" for s in steps).rstrip()
            seconds = time.perf_counter() - started
            print(f"regen: {name} ({seconds:.0f} s)", file=sys.stderr, flush=True)
        return result

    def facts(self) -> dict[str, str]:
        """The inline facts of the quickstart that made the numbers (none if it was reused
        from a folder that does not record them)."""
        state = self.state()
        if "wall_s" not in state:
            return {}
        return {
            "machine": state["machine"],
            "quickstart-time": f"{minutes(state['wall_s'])} of wall time and "
            f"{state['cpu_s']:.0f} s of CPU",
            "quickstart-log": transcript_body(state["log"]),
        }


def pages() -> list[str]:
    """The pages that may hold blocks, relative to the repository: README.md and docs/*.md."""
    return ["README.md", *sorted(f"docs/{p.name}" for p in (REPO / "docs").glob("*.md"))]


def check_names(texts: dict[str, str]) -> None:
    """Every block names a transcript or a fact, and every transcript is on some page."""
    known = {*BLOCKS, *TABLES, *FACTS}
    seen = set()
    for page, text in texts.items():
        for m in blocks(text, page):
            if m["name"] not in known:
                raise RegenError(
                    f"{page}: unknown block {m['name']!r}; known: {', '.join(sorted(known))}"
                )
            seen.add(m["name"])
    missing = sorted({*BLOCKS, *TABLES} - seen)
    if missing:
        raise RegenError(f"no page holds the block(s) {', '.join(missing)}")


def differences(texts: dict[str, str], bodies: dict[str, str]) -> list[str]:
    """Unified diffs, in masked form, of every block whose page differs from its new output."""
    found = []
    for page, text in texts.items():
        for m in blocks(text, page):
            if m["name"] not in bodies:
                continue
            old = mask(m["body"]).splitlines()
            new = mask(bodies[m["name"]]).splitlines()
            if old != new:
                where = f"{page} block {m['name']}"
                diff = difflib.unified_diff(
                    old, new, f"{where} (page)", f"{where} (now)", lineterm=""
                )
                found.append("\n".join(diff))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="See the module docstring for what a block is and what a rerun keeps.",
    )
    parser.add_argument("--work", type=Path, help="work folder, kept (default: a new one)")
    parser.add_argument(
        "--check", action="store_true", help="quick size; compare instead of writing (CI)"
    )
    args = parser.parse_args(argv)
    try:
        texts = {page: (REPO / page).read_text() for page in pages()}
        check_names(texts)
        size = "quick" if args.check else "default"
        if args.work is None and args.check:
            with tempfile.TemporaryDirectory(prefix="facebench-regen-") as tmp:
                transcripts = Work(Path(tmp), size).transcripts()
        else:
            folder = args.work or Path(tempfile.mkdtemp(prefix="facebench-regen-"))
            work = Work(folder, size)
            transcripts = work.transcripts()
    except RegenError as exc:
        print(f"regen: error: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, CommandFailed) else 2
    if args.check:
        found = differences(texts, command_bodies(transcripts))
        for diff in found:
            print(diff)
        print(
            f"regen: {len(found)} block(s) differ beyond their numbers: run python docs/regen.py"
            if found
            else "regen: every block matches the current code (numbers aside)",
            file=sys.stderr,
        )
        return 1 if found else 0
    bodies = command_bodies(transcripts)
    bodies.update(work.facts())
    for page in texts:  # read again: the pages may have been edited while the commands ran
        text = (REPO / page).read_text()
        new = replace_blocks(text, bodies, page)
        if new != text:
            (REPO / page).write_text(new)
            print(f"regen: rewrote {page}", file=sys.stderr)
    print(f"regen: work folder {work.path} (rerun: python docs/regen.py --work {work.path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
