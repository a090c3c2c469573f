"""Real answer strings from runs of the packaged models, the organisms and the multiple-choice tasks,
each with the value it should read as under both readings (tests/fixtures/answer_corpus.json).

Each entry was read by a person, not copied from the parser: ``strict`` is what the task's own parser
must read (an answer the text starts with), ``flexible`` what the answer states.
"""

import json
from pathlib import Path

import pytest

from faithfulness.answers import read_answer
from faithfulness.tasks import parse_leading_integer, parse_letter

CORPUS = json.loads((Path(__file__).parent / "fixtures" / "answer_corpus.json").read_text())


def _strict(entry: dict) -> str | None:
    if entry["answer_type"] == "letter":
        return parse_letter(entry["text"], tuple(entry["choices"]))
    value = parse_leading_integer(entry["text"])
    return None if value is None else str(value)


def test_the_corpus_is_large_and_covers_every_source():
    assert len(CORPUS) >= 60
    assert {e["model"] for e in CORPUS} >= {
        "qwen2.5-coder-0.5b-instruct",
        "smollm2-135m-instruct",
        "organism-faithful",
        "organism-unfaithful",
    }
    assert {e["answer_type"] for e in CORPUS} == {"integer", "letter"}
    assert len({e["text"] for e in CORPUS}) == len(CORPUS)  # no string twice


@pytest.mark.parametrize(
    "entry", CORPUS, ids=[f"{e['model'][:12]}-{e['perturbation']}-{n}" for n, e in enumerate(CORPUS)]
)
def test_each_real_answer_reads_as_a_person_reads_it(entry):
    strict = _strict(entry)
    reading = read_answer(entry["text"], entry["answer_type"], entry["choices"], strict)
    assert (reading.strict, reading.flexible) == (entry["strict"], entry["flexible"]), entry["text"]
