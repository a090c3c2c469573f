import json
import os

import pandas as pd
import pytest

from faithfulness import SCHEMA_VERSION, results
from faithfulness.errors import StateError
from faithfulness.results import COLUMNS, read_results, to_table, write_json, write_parquet


def _row(**overrides):
    row = {name: None for name, _, _ in COLUMNS}
    row.update(item_id=0, sample=0, perturbation="original", level=2, n_steps=2, outcome="same", answer="5")
    row.update(overrides)
    return row


def test_roundtrip_keeps_nulls_as_nulls(tmp_path):
    df = to_table([_row(), _row(answer=None, outcome="unparsed", level=0)])
    write_parquet(df, tmp_path / "r.parquet")
    back = read_results(tmp_path / "r.parquet")
    assert back["answer"].isna().tolist() == [False, True]
    assert back["answer"].tolist()[0] == "5"
    assert back["schema_version"].tolist() == [SCHEMA_VERSION] * 2
    pd.testing.assert_frame_equal(back, df)


def test_a_row_with_a_missing_or_extra_column_is_refused():
    row = _row()
    del row["answer"]
    with pytest.raises(ValueError, match="answer"):
        to_table([row])
    with pytest.raises(ValueError, match="surprise"):
        to_table([_row(surprise=1)])


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "summary.json"
    write_json({"a": 1}, path)

    def crash_midway(handle):
        handle.write(b'{"a": 2, "trunc')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        results._atomic(path, crash_midway)
    assert json.loads(path.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["summary.json"]  # no temp file left behind


def test_failed_parquet_write_leaves_no_partial_file(tmp_path):
    df = to_table([_row()])
    df["level"] = "not a number"
    with pytest.raises(Exception):
        write_parquet(df, tmp_path / "r.parquet")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("damage", ["truncate", "garble", "empty"])
def test_a_damaged_results_file_is_an_error_naming_it_never_a_partial_table(tmp_path, damage):
    path = tmp_path / "results.parquet"
    write_parquet(to_table([_row(level=n) for n in range(50)]), path)
    data = path.read_bytes()
    damaged = {"truncate": data[: len(data) // 2], "garble": data[:4] + os.urandom(len(data) - 8) + data[-4:], "empty": b""}
    path.write_bytes(damaged[damage])
    with pytest.raises(StateError, match=f"results file {path} is unreadable"):
        read_results(path)


def test_a_schema_3_table_reads_with_the_hint_and_target_columns_null(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    added = ["hint", "target_answer", "hint_verbalised", "hint_judged", "logprob_target", "subdomain"]
    old = to_table([_row(), _row(level=0)]).drop(columns=added).assign(schema_version=3)
    pq.write_table(pa.Table.from_pandas(old, preserve_index=False), tmp_path / "v3.parquet")
    back = read_results(tmp_path / "v3.parquet")
    assert list(back.columns) == [name for name, _, _ in COLUMNS] and set(back["schema_version"]) == {SCHEMA_VERSION}
    assert back[added].isna().all().all() and back["answer"].tolist() == ["5", "5"]
