"""One verdict everywhere: a difference is resolved when the 95% interval of the difference excludes 0,
in the sweep's summary, the dashboard (front, differences table, paper tables), pareto.json and
`tokensweep report` (Markdown, LaTeX, CSV). The cases here are built so that the overlap rule (two
intervals that overlap are 'within noise') and the difference rule disagree."""

import csv
import io
import json
import re
import shutil
import statistics
import subprocess
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

import vocab
from dashboards import paper
from dashboards.build import build_dashboard
from dashboards.compare import compare
from dashboards.demo import DEMO_SCHEMA
from dashboards.errors import InputError
from dashboards.report import build_report, latex_escape, render
from dashboards.stats import summarize
from tokensweep.cli import main
from tokensweep.sweep import progress

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
# Seven bench repeats: the machine's pace varies 20% between repeats, and every architecture of a
# repeat sees the same pace (the bench interleaves them step by step)
PACE = (1.0, 0.8, 0.95, 0.85, 0.9, 0.82, 0.97)
TINY_PROPOSED = dict(model="vit_tiny_supertoken", conv_depth=6, extra_conv=False, cluster_iters=3,
                     channels="8,16,16,32,32,32", mask_border=False)  # fmt: skip
# conv beats super-token by 4 points of top-1 and ~2% of images/sec; every interval overlaps its rival's
CONV = ("conv", dict(model="vit_tiny_conv"), [84.0, 85.0, 86.0], [1000.0 * p for p in PACE])
SUPERTOKEN = ("st", TINY_PROPOSED, [80.0, 81.0, 82.0], [980.0 * p for p in PACE])


def runs_table(*configs, dataset: str = "tiny") -> pa.Table:
    """configs: (name, params, top-1 per seed, the bench's repeats); with vocab.BENCH_REPEATS as the readers add it."""
    rows, repeats = [], []
    for name, params, top1s, bench in configs:
        embedding = params["model"].split("_", 2)[2]
        for seed, top1 in enumerate(top1s):
            rows.append(dict(params, run_id=f"r{len(rows):02d}", run_name=f"{name}-s{seed}", status="FINISHED",
                             start_time=T0 + timedelta(minutes=len(rows)), config_id=name, embedding=embedding,
                             seed=seed, dataset=dataset, top1=top1, images_per_sec=500.0 + seed, params=5_000_000,
                             embed_params=12_000, flops=2.1e8, bench_id="1-ab", bench_images_per_sec=statistics.median(bench),
                             bench_images_per_sec_ci_low=min(bench), bench_images_per_sec_ci_high=max(bench)))  # fmt: skip
            repeats.append(bench)
    table = pa.Table.from_pylist(rows, schema=DEMO_SCHEMA)
    return table.append_column(vocab.BENCH_REPEATS, pa.array(repeats, pa.list_(pa.float64())))


def bench_table(*configs) -> dict:
    """The bench stage's table of the same architectures, as the sweep's summary receives it."""
    rows = [{"label": name, "images_per_sec": statistics.median(bench), "ci_low": min(bench), "ci_high": max(bench),
             "coverage": 0.984, "repeat_images_per_sec": bench} for name, _, _, bench in configs]  # fmt: skip
    return {"bench_id": "1-ab", "repeats": len(PACE), "rows": rows}


def overlaps(a: tuple, b: tuple) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def test_the_case_is_one_where_overlap_and_difference_disagree():
    conv, st = summarize(CONV[2]), summarize(SUPERTOKEN[2])
    assert overlaps(conv.bounds, st.bounds)  # the overlap rule would call it noise
    assert overlaps((min(CONV[3]), max(CONV[3])), (min(SUPERTOKEN[3]), max(SUPERTOKEN[3])))


def test_every_output_gives_the_same_verdict(tmp_path):
    runs = runs_table(CONV, SUPERTOKEN)
    expected = {("top1", "conv", "st"): True, ("images_per_sec", "conv", "st"): True}

    report = build_report(runs, "case")
    assert {(d.metric, d.a, d.b): d.resolved for d in report.differences} == expected
    assert {d.difference.method for d in report.differences} == {"Welch over seeds", "paired t over the bench's repeats"}
    rows = list(csv.DictReader(io.StringIO(render(report, "csv"))))
    assert {(r["metric"], r["a"], r["b"]): r["resolved"] for r in rows} == {k: "true" for k in expected}
    markdown = render(report, "md")
    assert markdown.count("| yes |") == 2 and "| no |" not in markdown

    paths = build_dashboard(runs, tmp_path)
    front = json.loads(paths["pareto.json"].read_text())
    assert {(d["metric"], d["a"], d["b"]): d["resolved"] for d in front["differences"]} == expected
    states = {c["name"]: (c["on_front"], c["within_noise_of_front"]) for c in front["configurations"]}
    assert states == {"conv": (True, False), "st": (False, False)}  # surely dominated, though every interval overlaps
    data = json.loads(re.search(r'id="page-data">(.*?)</script>', paths["pareto.html"].read_text(), re.S)[1])
    assert [row["cells"][6] for row in data["differences"]["rows"]] == ["resolved", "resolved"]

    table6 = compare(paper.TABLE_6, runs.to_pylist())
    super_minus_conv = next(r for r in table6.rows if r[0] == "super-token − conv")
    assert super_minus_conv[5].endswith(", resolved"), super_minus_conv

    lines = progress.findings(bench_table(CONV, SUPERTOKEN), [("conv", CONV[2]), ("st", SUPERTOKEN[2])], sweep="case")
    assert ("inference throughput, benched alone (images/s), 7 repeats, paired t over the bench's repeats: 1 of 1 "
            "difference(s) resolved (conv > st)") in lines[1]
    assert lines[2] == "  top-1 (3 seeds, Welch over seeds): 1 of 1 difference(s) resolved (conv > st)"


def test_an_unresolved_difference_is_unresolved_everywhere(tmp_path):
    close = ("st", TINY_PROPOSED, [83.0, 85.5, 86.0], [1010.0, 790.0, 950.0, 860.0, 895.0, 815.0, 975.0])
    runs = runs_table(CONV, close)
    report = build_report(runs, "case")
    assert [d.resolved for d in report.differences] == [False, False]
    front = json.loads(build_dashboard(runs, tmp_path)["pareto.json"].read_text())
    assert [d["resolved"] for d in front["differences"]] == [False, False]
    lines = progress.findings(bench_table(CONV, close), [("conv", CONV[2]), ("st", close[2])])
    assert "0 of 1 difference(s) resolved; unresolved: conv ~ st" in lines[1] and lines[2].endswith("unresolved: conv ~ st")


def test_the_summary_says_when_seeds_are_missing():
    single = progress.findings(None, [("a", [50.0]), ("b", [60.0])])
    assert single[1].startswith("  top-1: one seed per configuration, no interval")
    mixed = progress.findings(None, [("a", [50.0, 51.0]), ("b", [60.0, 61.0]), ("c", [55.0])])
    assert mixed[1].endswith("; 1 single-seed configuration(s) left out")
    assert progress.config_label("confirm-t002-channels=8-16-seed=1") == "t002-channels=8-16"


def own_embeddings(count: int) -> list[tuple]:
    """`count` configurations of a user's embedding, each 1.2 points of top-1 apart."""
    return [(f"mine-{k}", dict(model="vit_tiny_overlap_patch"), [70.0 + 1.2 * k + d for d in (-0.5, 0.0, 0.5)],
             [900.0 * p * (1 + 0.05 * k) for p in PACE]) for k in range(count)]  # fmt: skip


def test_nothing_is_truncated_and_the_summary_points_to_the_report():
    configs = [CONV, SUPERTOKEN, *own_embeddings(4)]
    report = build_report(runs_table(*configs), "mine")
    pairs = {(d.a, d.b) for d in report.differences if d.metric == "top1"}
    assert len(pairs) == 15 and ("mine-2", "mine-3") in pairs  # 6 configurations: every pair, the user's included
    assert len(list(csv.DictReader(io.StringIO(render(report, "csv"))))) == 30
    lines = progress.findings(bench_table(*configs), [(c[0], c[2]) for c in configs], sweep="mine")
    assert all(line.endswith("every pair: tokensweep report mine") for line in lines[1:]) and "more" not in lines[2]


def test_baseline_and_holm():
    configs = [CONV, SUPERTOKEN, *own_embeddings(3)]
    runs = runs_table(*configs)
    against = build_report(runs, "b", baseline="conv")
    assert [(d.a, d.b) for d in against.differences if d.metric == "top1"] == [
        ("st", "conv"), ("mine-0", "conv"), ("mine-1", "conv"), ("mine-2", "conv")]
    plain, holm = build_report(runs, "b"), build_report(runs, "b", adjust="holm")
    widths = lambda r: [d.difference.high - d.difference.low for d in r.differences]  # noqa: E731
    # Holm tests the i-th smallest of m p-values at 0.05/(m - i + 1): no interval is narrower, most are wider
    assert all(h >= p - 1e-9 for h, p in zip(widths(holm), widths(plain))) and widths(holm) != widths(plain)
    # mine-k and mine-(k+1): 1.2 points apart (p = 0.04), resolved at 95% but not at Holm's stricter levels
    top1 = lambda r: {(d.a, d.b): d.resolved for d in r.differences if d.metric == "top1"}  # noqa: E731
    assert top1(plain)[("mine-0", "mine-1")] and not top1(holm)[("mine-0", "mine-1")]
    assert "Holm-adjusted" in render(holm, "md") and "unadjusted" in render(plain, "md")
    assert {r["adjustment"] for r in csv.DictReader(io.StringIO(render(holm, "csv")))} == {"holm"}
    with pytest.raises(InputError, match="--baseline 'nope' is not a configuration of the sweep; its configurations: 'conv'"):
        build_report(runs, "b", baseline="nope")


def test_latex_is_escaped_and_compiles(tmp_path):
    name = "50%_a&b #1 {x} ~y^ ±"
    assert latex_escape(name) == r"50\%\_a\&b \#1 \{x\} \textasciitilde{}y\textasciicircum{} $\pm$"
    runs = runs_table(CONV, (name, dict(model="vit_tiny_overlap_patch"), [80.0, 81.0, 82.0], list(SUPERTOKEN[3])))
    text = render(build_report(runs, "my_sweep 100%"), "latex")
    assert r"my\_sweep 100\%" in text and "±" not in text and text.isascii()
    if shutil.which("pdflatex") is None:
        pytest.skip("no pdflatex here (Debian: texlive-latex-base): escaping checked, compiling not")
    (tmp_path / "report.tex").write_text(text)
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "report.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:]
    assert (tmp_path / "report.pdf").stat().st_size > 0


def test_the_paper_is_beside_the_sweep_only_when_comparable(tmp_path):
    runs = runs_table(CONV, SUPERTOKEN, *own_embeddings(1))
    own = build_dashboard(runs, tmp_path / "own")["pareto.html"].read_text()
    assert '<details id="paper-tables">' in own and 'id="paper-marks"' not in own and "--paper" in own
    assert "overlap_patch (this sweep only)" in own  # the user's embedding has a row in the by-embedding tables
    asked = build_dashboard(runs, tmp_path / "asked", paper=True)["pareto.html"].read_text()
    imagenet = build_dashboard(runs_table(CONV, SUPERTOKEN, dataset=paper.DATASET), tmp_path / "in100")["pareto.html"]
    for html in (asked, imagenet.read_text()):
        assert "<details" not in html and "The paper's tables beside this sweep" in html and 'id="paper-marks"' in html


@pytest.mark.parametrize("argv, message", [
    (["--format", "xml"], "--format must be one of md, latex, csv, got 'xml'"),
    (["--adjust", "bonferroni"], "--adjust must be one of none, holm, got 'bonferroni'"),
    (["--baseline", "nope"], "--baseline 'nope' is not a configuration of the sweep"),
])  # fmt: skip
def test_bad_report_options_are_one_line_exit_2_nothing_written(argv, message, tmp_path, capsys):
    parquet = tmp_path / "runs.parquet"
    import pyarrow.parquet as pq

    pq.write_table(runs_table(CONV, SUPERTOKEN), parquet)
    out = tmp_path / "report.md"
    assert main(["report", "case", "--runs", str(parquet), "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()


def test_report_from_a_parquet_export(tmp_path, capsys):
    import pyarrow.parquet as pq

    parquet = tmp_path / "runs.parquet"
    pq.write_table(runs_table(CONV, SUPERTOKEN).drop_columns([vocab.BENCH_REPEATS]), parquet)  # an older export has none
    assert main(["report", "case", "--runs", str(parquet), "--format", "csv"]) == 0
    rows = {r["metric"]: r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    assert rows["top1"]["resolved"] == "true"
    assert rows["images_per_sec"]["resolved"] == "" and rows["images_per_sec"]["method"].startswith("no interval")


def test_too_many_pairs_for_a_page_point_to_the_report(tmp_path, monkeypatch):
    from dashboards import tables

    monkeypatch.setattr(tables, "MAX_PAGE_PAIRS", 2)  # 3 configurations: 3 pairs
    paths = build_dashboard(runs_table(CONV, SUPERTOKEN, *own_embeddings(1)), tmp_path, experiment="big")
    assert json.loads(paths["pareto.json"].read_text())["differences"] is None
    assert "<code>tokensweep report big --format csv</code> lists every difference" in paths["pareto.html"].read_text()
