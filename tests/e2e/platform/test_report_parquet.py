"""`tokensweep export` carries the bench's repeats: the report drawn from the exported Parquet file
gives the same images/sec differences, intervals and verdicts as the report drawn from MLflow."""

import csv
import io

import pytest
from test_report_mlflow import benched_sweep  # noqa: F401 - the fixture: a real store with a real bench

import vocab
from tokensweep.cli import main

pytestmark = pytest.mark.slow  # MLflow, and a bench of four tiny models


def report_rows(capsys, *source) -> list[dict]:
    assert main(["report", "smoke", *source, "--format", "csv"]) == 0
    return list(csv.DictReader(io.StringIO(capsys.readouterr().out)))


def test_the_report_from_an_export_is_the_report_from_mlflow(benched_sweep, tmp_path, capsys):  # noqa: F811
    import pyarrow.parquet as pq

    uri, bench, _ = benched_sweep
    parquet = tmp_path / "runs.parquet"
    assert main(["export", "smoke", "--tracking-uri", uri, "--out", str(parquet)]) == 0
    repeats = {tuple(r) for r in pq.read_table(parquet).column(vocab.BENCH_REPEATS).to_pylist()}
    assert repeats == {tuple(row["repeat_images_per_sec"]) for row in bench["rows"]}  # each architecture's, as benched
    capsys.readouterr()

    from_mlflow = report_rows(capsys, "--tracking-uri", uri)
    from_parquet = report_rows(capsys, "--runs", str(parquet))
    speed = [r for r in from_parquet if r["metric"] == "images_per_sec"]
    assert len(speed) == 6 and all(r["ci_low"] and r["resolved"] in ("true", "false") for r in speed)
    assert from_parquet == from_mlflow  # every row, top-1's and images/sec's, to the last digit
