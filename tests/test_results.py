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

    with pytest.raises(StateError, match=f"cannot write {path}: disk full"):  # one line naming file and cause
        results._atomic(path, crash_midway)
    assert json.loads(path.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["summary.json"]  # no temp file left behind


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_results_files_are_as_readable_as_the_umask_allows(tmp_path, mask):
    old = os.umask(mask)
    try:
        write_json({"a": 1}, tmp_path / "summary.json")
        write_parquet(to_table([_row()]), tmp_path / "results.parquet")
    finally:
        os.umask(old)
    for name in ("summary.json", "results.parquet"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~mask, name  # as a plain open() makes it


def test_a_results_file_that_cannot_be_written_is_one_line_naming_it(tmp_path):
    (tmp_path / "taken").write_text("a file where a folder should be")
    with pytest.raises(StateError, match=f"cannot write {tmp_path / 'taken' / 'summary.json'}: "):
        write_json({"a": 1}, tmp_path / "taken" / "summary.json")


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
    damaged = {
        "truncate": data[: len(data) // 2],
        "garble": data[:4] + os.urandom(len(data) - 8) + data[-4:],
        "empty": b"",
    }
    path.write_bytes(damaged[damage])
    with pytest.raises(StateError, match=f"results file {path} is unreadable"):
        read_results(path)


_IN_5 = [*results.ADDED_IN_5, "subdomain"]  # schema 5: the hint and target columns (and sycophancy's difficulty key)


def test_a_schema_3_table_gets_its_flexible_reading_from_the_answer_text(tmp_path):
    rows = [
        _row(
            run_id="r",
            answer_type="integer",
            choices="",
            correct_answer="7",
            answer_text=" 7",
            answer="7",
            reference_answer="7",
            logprob_original=-0.5,
        ),
        _row(
            run_id="r",
            answer_type="integer",
            choices="",
            correct_answer="7",
            perturbation="no_cot",
            level=0,
            answer_text=" 3 + 4 = 7.",
            answer=None,
            reference_answer="7",
            outcome="unparsed",
            logprob_original=-2.0,
        ),
    ]
    flexible = [name for name, _, _ in COLUMNS if name.endswith("_flexible") or name == "answer_rule"]
    old = to_table(rows).drop(columns=flexible + list(results.ADDED_IN_4) + _IN_5).assign(schema_version=3)
    old.to_parquet(tmp_path / "results.parquet")
    back = read_results(tmp_path / "results.parquet")
    assert back["schema_version"].tolist() == [SCHEMA_VERSION] * 2
    assert back["answer_flexible"].tolist() == ["7", "7"] and back["answer_rule"].tolist() == [
        "strict",
        "stated_result",
    ]
    assert back["outcome_flexible"].tolist() == ["same", "same"] and back["correct_flexible"].tolist() == [True, True]
    assert back["outcome"].tolist() == ["same", "unparsed"]  # the strict reading is kept as it was
    assert back["logprob_original_flexible"].tolist() == [-0.5, -2.0]


def test_a_schema_3_table_reads_with_the_reasoning_columns_null(tmp_path):
    flexible = [name for name, _, _ in COLUMNS if name.endswith("_flexible") or name == "answer_rule"]
    df = (
        to_table([_row(), _row(level=0)])
        .drop(columns=list(results.ADDED_IN_4) + flexible + _IN_5)
        .assign(schema_version=3)
    )
    df.to_parquet(tmp_path / "r.parquet")  # what schema 3 wrote: no thinking_cut, cut_points or reasoning
    back = read_results(tmp_path / "r.parquet")
    assert [name for name, _, _ in COLUMNS] == list(back.columns) and back["schema_version"].tolist() == [
        SCHEMA_VERSION
    ] * 2
    assert back[list(results.ADDED_IN_4) + _IN_5].isna().all().all() and back["answer"].tolist() == ["5", "5"]


def test_a_schema_4_table_reads_with_the_hint_and_target_columns_null(tmp_path):
    old = (
        to_table([_row(answer_flexible="5"), _row(answer_flexible="5", level=0)])
        .drop(columns=_IN_5)
        .assign(schema_version=4)
    )
    old.to_parquet(tmp_path / "v4.parquet")
    back = read_results(tmp_path / "v4.parquet")
    assert list(back.columns) == [name for name, _, _ in COLUMNS] and set(back["schema_version"]) == {SCHEMA_VERSION}
    assert back[_IN_5].isna().all().all() and back["answer"].tolist() == ["5", "5"]
    assert back["answer_flexible"].tolist() == ["5", "5"]  # schema 4 had both readings: kept as written


def test_a_pre_release_schema_4_table_with_hints_but_one_reading_keeps_its_hints(tmp_path):
    flexible = [name for name, _, _ in COLUMNS if name.endswith("_flexible") or name == "answer_rule"]
    rows = [_row(hint="professor", target_answer="B", hint_verbalised=True, logprob_target=-0.1)]
    old = to_table(rows).drop(columns=flexible + list(results.ADDED_IN_4)).assign(schema_version=4)
    old.to_parquet(tmp_path / "v4.parquet")  # what branch issue13 wrote before schema 5
    back = read_results(tmp_path / "v4.parquet")
    assert back["schema_version"].tolist() == [SCHEMA_VERSION] and back["answer_flexible"].tolist() == ["5"]
    assert back[["hint", "target_answer", "hint_verbalised"]].iloc[0].tolist() == ["professor", "B", True]
    assert back["logprob_target"].tolist() == [-0.1]
