"""One vocabulary: the export's columns and what the dashboards read are vocab's names,
and a param vocab does not declare (an embedding's knob, a plugin's `kernel`) becomes a typed
column that the hover and the runs table show with no code change."""


import pyarrow as pa

import vocab
from dashboard_store import make_store, trial
from dashboards.runs import ARROW_TYPES, KIND
from tokensweep.tracking.export import runs_table

FIRST = {}
for f in vocab.FIELDS:  # one column per name: `lr` is both a param and an epoch metric, the param comes first
    FIRST.setdefault(f.name, f)


def test_the_export_types_every_vocab_tag_and_a_plugins_knob(mlflow_store, tmp_path):
    tags = {"data_form": "resized_256", "threads": "2", "bench_batch": "64", "bench_device": "cpu: Test CPU",
            "bench_id": "b1", "tokensweep.config_id": "cfg-a"}
    trials = [
        trial("k3", "dwconv", metrics=dict(top1=50.0, images_per_sec=900.0, params=5.0e6), tags=tags, kernel=3,
              backbone="ti"),
        trial("k5", "dwconv", metrics=dict(top1=51.0, images_per_sec=800.0, bad_images=2.0), tags=tags, kernel=5),
    ]
    store = make_store(tmp_path, experiment="plugin", trials=trials, db_dir=mlflow_store.db_dir)
    table = runs_table("plugin", store.uri)
    names = table.schema.names
    knobs = names[names.index("backbone") + 1 : names.index("img_size")]
    assert "kernel" in knobs and table.schema.field("kernel").type == pa.int64()
    assert all(table.schema.field(k).metadata == {KIND: b"param"} for k in knobs)
    for name in FIRST:  # every vocab field is a column of its type
        assert table.schema.field(name).type == ARROW_TYPES[FIRST[name].type], name
    rows = {r["run_name"]: r for r in table.to_pylist()}
    k3 = rows["k3"]
    assert k3["kernel"] == 3 and rows["k5"]["kernel"] == 5
    assert k3["data_form"] == "resized_256" and k3["threads"] == 2 and k3["bench_batch"] == 64
    assert k3["bench_device"] == "cpu: Test CPU" and k3["bench_id"] == "b1" and k3["config_id"] == "cfg-a"
    assert k3["backbone"] == "ti" and rows["k5"]["backbone"] == "tiny"  # the param, else from the model name
    assert k3["params"] == 5_000_000 and rows["k5"]["bad_images"] == 2  # int metrics as ints
