"""One vocabulary: the export's columns and what the dashboards read are vocab's names,
and a param vocab does not declare (an embedding's knob, a plugin's `kernel`) becomes a typed
column that the hover and the runs table show with no code change."""

import re

import pyarrow as pa
import pytest

from dashboards import tables
from dashboards.analysis import analyse
from dashboards.build import DEFAULT_X, DEFAULT_Y
from dashboards.demo import demo_rows
from dashboards.runs import ARROW_TYPES, KIND, RUNS_SCHEMA, knob_field, metric_columns, param_columns, runs_schema
from helpers import REPO
from tokensweep.tracking.export import RUN_VALUES, infer_type
import vocab

DASHBOARDS = REPO / "dashboards"
FIRST = {}
for f in vocab.FIELDS:  # one column per name: `lr` is both a param and an epoch metric, the param comes first
    FIRST.setdefault(f.name, f)


def test_the_runs_schema_is_vocab_in_its_order_with_types_and_kinds():
    assert RUNS_SCHEMA.names == list(FIRST)
    for field in RUNS_SCHEMA:
        declared = FIRST[field.name]
        assert field.type == ARROW_TYPES[declared.type], field.name
        assert field.metadata == {KIND: declared.kind.encode()}, field.name
    assert set(RUN_VALUES) == set(vocab.names(vocab.RUN))  # the export knows where every run field comes from


def test_knobs_follow_backbone_and_undeclared_metrics_come_last():
    schema = runs_schema([knob_field("kernel", pa.int64())], ["new_metric"])
    names = schema.names
    assert names[names.index("backbone") + 1] == "kernel" and names[-1] == "new_metric"
    assert schema.field("kernel").metadata == {KIND: b"param"} and schema.field("new_metric").metadata == {KIND: b"metric"}
    assert "kernel" in param_columns(schema) and "kernel" not in metric_columns(schema.empty_table())
    assert "new_metric" in metric_columns(schema.empty_table())


@pytest.mark.parametrize(
    "texts, kind",
    [
        (["true", "False", "None"], pa.bool_()),
        (["3", "5", ""], pa.int64()),
        (["3", "0.5"], pa.float64()),
        (["16,32,32,64,64,64", "8,16,16,32,32,32"], pa.string()),  # widths stay a string
        (["1", "true"], pa.string()),  # neither all bools nor all numbers
        (["None", "null"], pa.string()),  # nothing known: text
    ],
)
def test_a_knobs_type_is_inferred_from_its_values(texts, kind):
    assert infer_type(texts) == kind


def test_what_the_dashboards_read_is_declared_in_vocab():
    """Every run column named in dashboards' code is a vocab name (a knob is never named there)."""
    pattern = re.compile(r"""\b(?:run|r|row)(?:\.get\(|\[)["']([a-z0-9_]+)["']""")
    named = {name for path in DASHBOARDS.glob("*.py") for name in pattern.findall(path.read_text())}
    assert {"status", "embedding", "device", "params"} <= named  # the scan finds them
    assert named - set(FIRST) == set()
    declared_metrics = set(vocab.METRICS)
    assert set(tables.RESULT_METRICS) | set(tables.HOVER_METRICS) <= declared_metrics


def kernel_rows() -> list[dict]:
    """The demo runs with a plugin embedding whose knob `kernel` no code of the dashboards names."""
    rows = demo_rows()
    for i, row in enumerate(r for r in rows if r["embedding"] == "conv"):
        row.update(embedding="dwconv", model="vit_s_dwconv", kernel=3 + 2 * (i % 2), config_id=f"k{i % 2}")
    return rows


def test_a_plugins_knob_is_a_param_the_hover_and_the_table_show():
    from dashboards.demo import KNOBS

    schema = runs_schema([*KNOBS, knob_field("kernel", pa.int64())])
    analysis = analyse(pa.Table.from_pylist(kernel_rows(), schema=schema), DEFAULT_X, DEFAULT_Y)
    assert "kernel" in analysis.params and "kernel" in analysis.swept_params
    runs = tables.runs_table(analysis)
    column = next(c for c in runs["columns"] if c["name"] == "kernel")
    assert column["hover"] is True  # the chart's hover shows it
    values = {r["cells"][runs["columns"].index(column)][1] for r in runs["rows"]}
    assert values == {3, 5, None}  # typed, null for the other embeddings
    configs = tables.configurations_table(analysis)
    assert "kernel" in [c["name"] for c in configs["columns"]]


DOCS = REPO / "docs" / "dashboard.md"


def test_the_documented_columns_are_vocabs_in_its_order():
    section = DOCS.read_text().split("## The runs table")[1].split("\n\n")[2]  # the table after the intro
    documented = []
    for line in section.splitlines()[2:]:  # past the header and its rule
        first = line.split("|")[1]
        documented += re.findall(r"`([a-z0-9_]+)`", first) or [first.strip()]
    names = RUNS_SCHEMA.names
    at = names.index("backbone") + 1
    assert documented == names[:at] + ["*knobs*"] + names[at:]


def test_the_documented_python_example_runs(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from dashboards.demo import demo_runs

    code = DOCS.read_text().split("## From Python")[1].split("```python")[1].split("```")[0]
    pq.write_table(demo_runs(), tmp_path / "runs.parquet")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(DOCS), "exec"), {})  # noqa: S102 - the project's own documentation
    assert (tmp_path / "out" / "pareto.html").is_file()
