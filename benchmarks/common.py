"""What every section shares: settings, environment columns, targets, CSV and Markdown output."""

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from vocab.atomic import write_text_atomic
from trials.measure import environment

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Settings:
    device: torch.device
    threads: int  # CPU threads, fixed for every timed call
    warmup: int = 2
    steps: int = 10  # timed steps per variant; the median is the figure
    quick: bool = False  # tiny sizes and steps: proves the code runs (tests); figures mean nothing
    out_dir: Path = RESULTS_DIR

    @property
    def on_cuda(self) -> bool:
        return self.device.type == "cuda"


@dataclass
class Target:
    """One target of the issue: the measured value beside the goal, and whether it is met."""

    name: str
    value: float | None
    goal: float | None  # None: no goal set yet, the value is reported only
    unit: str = "x"
    higher_is_better: bool = True
    note: str = ""
    spread: float | None = None  # the larger IQR/median of the timings behind the value

    NOISY = 0.25  # above this spread the machine was too busy for a steady figure: say so

    @property
    def met(self) -> bool | None:
        if self.value is None or self.goal is None:
            return None
        return self.value >= self.goal if self.higher_is_better else self.value <= self.goal

    def verdict(self) -> str:
        if self.value is not None and self.goal is None:
            return "reported"
        verdict = {True: "met", False: "MISSED", None: "not measured"}[self.met]
        if self.spread is not None and self.spread > self.NOISY:
            verdict += f" (noisy: spread {self.spread:.2f})"
        return verdict

    def goal_text(self) -> str:
        if self.goal is None:
            return "none yet"
        return f"{'>=' if self.higher_is_better else '<='} {self.goal:g}{self.unit}"

    def value_text(self) -> str:
        return "-" if self.value is None else f"{self.value:.3g}{self.unit}"


@dataclass
class SectionResult:
    name: str
    rows: list[dict] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    md_columns: tuple[str, ...] = ()  # the CSV columns the Markdown table shows
    notes: list[str] = field(default_factory=list)  # how it was measured, why a target is missed


def env_columns(settings: Settings, precision: str, batch: int) -> dict:
    """The environment of a figure (trials.measure.environment) plus the machine's load and protocol."""
    row = environment(settings.device, precision, batch)
    row["threads"] = settings.threads if settings.device.type == "cpu" else row["threads"]
    row["load_avg_1m"] = round(os.getloadavg()[0], 2)  # > cpu_count: others were running too
    row["warmup"], row["steps"] = settings.warmup, settings.steps
    return row


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


def to_csv(rows: list[dict]) -> str:
    """Flat CSV, columns in first-seen order across rows (timm's benchmark CSV style)."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: fmt(v) for k, v in row.items()})
    return buf.getvalue()


def md_table(header: list[str], lines: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cells) + " |" for cells in lines]
    return "\n".join(out)


def targets_md(targets: list[Target]) -> str:
    lines = [[t.name, t.value_text(), t.goal_text(), t.verdict(), t.note] for t in targets]
    return md_table(["target", "measured", "goal", "status", "note"], lines)


def to_markdown(result: SectionResult) -> str:
    first = result.rows[0] if result.rows else {}
    env = ", ".join(
        f"{k} {first[k]}" for k in ("device", "torch_version", "threads", "load_avg_1m", "cpu_count") if k in first
    )
    parts = [f"# Benchmark: {result.name}", "", f"Environment: {env}.", ""]
    if result.targets:
        parts += ["## Targets", "", targets_md(result.targets), ""]
    if result.md_columns and result.rows:
        cols = list(result.md_columns)
        lines = [[fmt(row.get(c)) for c in cols] for row in result.rows]
        parts += ["## Figures", "", md_table(cols, lines), "", f"All columns: `{result.name}.csv`.", ""]
    if result.notes:
        parts += ["## Notes", ""] + [f"- {n}" for n in result.notes] + [""]
    return "\n".join(parts)


def write_section(result: SectionResult, out_dir: Path) -> list[Path]:
    """`<section>.csv` and `<section>.md` under out_dir, then the index README.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out_dir / f"{result.name}.csv", out_dir / f"{result.name}.md"
    write_text_atomic(csv_path, to_csv(result.rows))
    write_text_atomic(md_path, to_markdown(result))
    write_index(out_dir)
    return [csv_path, md_path]


def write_index(out_dir: Path) -> None:
    """README.md linking every section's summary present in out_dir (the page README links to)."""
    sections = sorted(p.stem for p in out_dir.glob("*.md") if p.name != "README.md")
    lines = ["# Benchmark results", "", "Written by `python -m benchmarks`; how they are measured: "
             "[docs/performance.md](../../docs/performance.md).", ""]  # fmt: skip
    lines += [f"- [{name}]({name}.md) ([CSV]({name}.csv))" for name in sections]
    write_text_atomic(out_dir / "README.md", "\n".join(lines) + "\n")


def format_targets(results: list[SectionResult]) -> str:
    """The short table printed last: every target with its measured value."""
    lines = [[r.name, t.name, t.value_text(), t.goal_text(), t.verdict()] for r in results for t in r.targets]
    header = ["section", "target", "measured", "goal", "status"]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    rows = [header, ["-" * w for w in widths], *lines]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)
