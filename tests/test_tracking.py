"""W&B mirroring: settings, the offline run read back with wandb's own tool, and the failure path."""

import hashlib
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from faithfulness import tracking
from faithfulness.config.fields import build
from faithfulness.config.sections import Wandb
from faithfulness.errors import ConfigError
from faithfulness.loading.hydra import compose
from faithfulness.loading.rules import load, resolve_wandb
from faithfulness.pipeline import run
from faithfulness.results import read_results
from tests.conftest import run_cli, run_in_group
from tests.test_pipeline import make_cfg


@pytest.fixture
def no_wandb_env(monkeypatch, tmp_path):
    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    empty = tmp_path / "netrc"
    empty.write_text("")
    monkeypatch.setenv("NETRC", str(empty))
    return empty


def settings(block: dict, results_dir: str = "results") -> Wandb:
    """The ``wandb`` block as ``run.py`` hands it on: the shipped keys, ``block`` over them, its mode resolved."""
    return resolve_wandb(build(Wandb, {**compose([])["wandb"], **block}, "wandb."), results_dir)


def test_default_mode_is_disabled_without_a_key_so_nobody_is_asked_to_log_in(no_wandb_env):
    opts = settings({"mode": "auto"}, "somewhere")
    assert opts.mode == "disabled" and opts.dir == "somewhere"
    assert tracking.log_run(Path("/no/such/folder"), opts) is None  # disabled: nothing is read, nothing fails


@pytest.mark.parametrize(
    "env,netrc,expected",
    [
        ({"WANDB_MODE": "offline"}, "", "offline"),
        ({"WANDB_MODE": "dryrun", "WANDB_API_KEY": "x" * 40}, "", "offline"),
        ({"WANDB_API_KEY": "x" * 40}, "", "online"),
        ({}, "machine api.wandb.ai\n  login user\n  password " + "y" * 40 + "\n", "online"),
        ({}, "machine example.org\n  login user\n  password secret\n", "disabled"),
    ],
)
def test_auto_mode_follows_wandb_mode_then_a_configured_key(no_wandb_env, monkeypatch, env, netrc, expected):
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    no_wandb_env.write_text(netrc)
    no_wandb_env.chmod(0o600)
    assert settings({}).mode == expected
    assert settings({"mode": "disabled"}).mode == "disabled"  # explicit beats the environment


@pytest.mark.parametrize(
    "block,needle",
    [
        ({"mode": "cloud"}, "wandb.mode='cloud' is not allowed: choose one of ['auto', 'online', 'offline', 'disab"),
        ({"projekt": "x"}, "wandb.projekt is not a setting"),
        ({"table_rows": 0}, "wandb.table_rows=0 is not allowed"),
        ({"timeout_s": "soon"}, "wandb.timeout_s='soon' is not allowed"),
    ],
)
def test_bad_settings_are_one_clear_config_error(block, needle):
    with pytest.raises(ConfigError) as error:
        settings(block)
    assert needle in str(error.value)


def test_bad_wandb_mode_in_the_environment_is_a_config_error(no_wandb_env, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "sometimes")
    with pytest.raises(ConfigError, match="WANDB_MODE='sometimes' is not allowed"):
        settings({})


def test_run_py_rejects_a_bad_wandb_setting_before_the_run_starts(tmp_path):
    done = run_cli("n=1", "wandb.mode=cloud", f"results_dir={tmp_path}", timeout=300)
    assert done.returncode == 2
    assert "error: wandb.mode='cloud' is not allowed" in done.stderr and "Traceback" not in done.stderr
    assert not list(tmp_path.rglob("*.parquet"))


def test_flatten_summary_keeps_every_metric_with_its_ci_and_n():
    metric = lambda v, lo, hi, n: {"value": v, "ci": [lo, hi], "n": n, "unparsed": 1}
    summary = {
        "metrics": {
            "accuracy_cot": metric(0.5, 0.25, 0.75, 8),
            "mean_cot_steps": 3.5,
            "early_answering": {
                "aoc": {"value": 0.2, "ci": [0.1, 0.3], "n": 8},
                "pct_same_by_fraction": {"0.5": metric(0.6, 0.4, 0.8, 6)},
            },
        },
        "skipped": [{}, {}],
        "timings": {"engine_start_s": 12.0},
    }
    assert tracking.flatten_summary(summary) == {
        "accuracy_cot": 0.5,
        "accuracy_cot/ci_low": 0.25,
        "accuracy_cot/ci_high": 0.75,
        "accuracy_cot/n": 8,
        "accuracy_cot/unparsed": 1,
        "mean_cot_steps": 3.5,
        "early_answering/aoc": 0.2,
        "early_answering/aoc/ci_low": 0.1,
        "early_answering/aoc/ci_high": 0.3,
        "early_answering/aoc/n": 8,
        "early_answering/pct_same_by_fraction/0.5": 0.6,
        "early_answering/pct_same_by_fraction/0.5/ci_low": 0.4,
        "early_answering/pct_same_by_fraction/0.5/ci_high": 0.8,
        "early_answering/pct_same_by_fraction/0.5/n": 6,
        "early_answering/pct_same_by_fraction/0.5/unparsed": 1,
        "skipped_levels": 2,
        "timings/engine_start_s": 12.0,
    }


def test_curves_are_sorted_tables_of_every_fraction_and_length():
    m = lambda v: {"value": v, "ci": [v - 0.1, v + 0.1], "n": 4}
    metrics = {
        "accuracy_cot": m(0.5),
        "filler_tokens": {"accuracy_by_length": {"10": m(0.2), "2": m(0.3), "0": m(0.4)}},
        "paraphrasing": {"pct_same_by_fraction": {"1": m(0.9), "0.25": m(0.7)}, "aoc": m(0.1)},
    }
    out = tracking.curves(metrics)
    assert sorted(out) == ["curves/filler_tokens/accuracy_by_length", "curves/paraphrasing/pct_same_by_fraction"]
    table, x, y = out["curves/filler_tokens/accuracy_by_length"]
    assert (x, y) == ("filler_tokens", "accuracy")
    assert table[x].tolist() == [0, 2, 10] and table[y].tolist() == [0.4, 0.3, 0.2]
    assert table.ci_low.tolist() == pytest.approx([0.3, 0.2, 0.1]) and table.n.tolist() == [4, 4, 4]
    table, x, y = out["curves/paraphrasing/pct_same_by_fraction"]
    assert (x, y) == ("fraction", "pct_same") and table[x].tolist() == [0.25, 1.0]


def test_results_sample_is_whole_below_the_limit_else_a_seeded_ordered_sample():
    df = pd.DataFrame({"a": pd.array(range(100), dtype="Int64"), "b": pd.array([True, None] * 50, dtype="boolean")})
    whole = tracking.results_sample(df, 100)
    assert len(whole) == 100 and whole.b.iloc[1] is None  # <NA> becomes None, which W&B tables take
    sample = tracking.results_sample(df, 10)
    assert len(sample) == 10 and sample.index.is_monotonic_increasing
    assert sample.a.tolist() == tracking.results_sample(df, 10).a.tolist()  # seeded


# --- a real run folder, mirrored offline and read back with `wandb leet inspect` --------------------------------


@pytest.fixture(scope="module")
def run_folder(tiny_model_dir, tiny_engine, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tracked")
    cfg = make_cfg(
        tmp,
        "model=hf",
        f"model.path={tiny_model_dir}",
        "n=3",
        "sampling.max_tokens=24",
        "bootstrap_resamples=50",
        "wandb.mode=offline",
        "wandb.tags=[test,tiny]",
    )
    return cfg, run(load(cfg), engine=tiny_engine).out_dir


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _leet(run_dir: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", *args, str(run_dir)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_offline_run_mirrors_config_summary_table_figures_and_artifact(run_folder, tmp_path, monkeypatch):
    cfg, out_dir = run_folder
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    before = _digest(out_dir)
    opts = settings({**cfg["wandb"], "dir": str(tmp_path), "table_rows": 7}, cfg["results_dir"])
    wandb_dir = Path(tracking.log_run(out_dir, opts, group="sweep-1"))
    assert wandb_dir.parent == tmp_path / "wandb" and wandb_dir.name.startswith("offline-run-")
    assert _digest(out_dir) == before  # W&B only reads the results

    seen = json.loads(_leet(wandb_dir, "--summary", "--json"))
    summary = json.loads((out_dir / "summary.json").read_text())
    config = json.loads((out_dir / "config.json").read_text())
    assert seen["state"] == "finished" and seen["exit_code"] == 0
    assert seen["name"] == f"{cfg['model']['name']} addition-d3-o2"  # model and difficulty
    assert sorted(seen["tags"]) == ["test", "tiny"]
    assert {k: seen["config"][k] for k in config} == config
    assert seen["config"]["provenance"] == summary["run"]

    # every metric of summary.json, with its CI and n, is in the W&B summary with the same value
    # (NaN, "nothing comparable", is stored as null, which `leet inspect --summary` leaves out)
    checked = 0

    def check(path: str, value: object) -> None:
        nonlocal checked
        if isinstance(value, float) and math.isnan(value):
            assert seen["summary"].get(path) is None, path
        else:
            assert seen["summary"][path] == pytest.approx(value), path
        checked += 1

    def walk(path: str, node: object) -> None:
        if isinstance(node, dict) and "value" in node:
            check(path, node["value"])
            check(f"{path}/ci_low", node["ci"][0])
            check(f"{path}/ci_high", node["ci"][1])
            check(f"{path}/n", node["n"])
        elif isinstance(node, dict):
            for key, child in node.items():
                walk(f"{path}/{key}" if path else key, child)
        else:
            check(path, node)

    walk("", summary["metrics"])
    assert checked > 100
    ci_values = [v for k, v in seen["summary"].items() if "/ci_" in k]
    assert any(isinstance(v, float) and 0 < v < 1 for v in ci_values)  # real numbers, not only NaN and 0/1

    # the curves, figures and a 7-row sample of the results table; the files as an artifact
    records = [json.loads(line) for line in _leet(wandb_dir, "--json").splitlines()]
    run_record = next(r["run"] for r in records if r["type"] == "run")
    assert run_record["run_group"] == "sweep-1" and run_record["job_type"] == "faithfulness"
    for name in ("early_answering/pct_same_by_fraction", "filler_tokens/accuracy_by_length"):
        assert f"curves/{name}_table" in seen["summary"]
    pngs = [Path(p).stem for p in summary["figures"] if p.endswith(".png")]
    assert pngs and all(seen["summary"][f"figures/{stem}"]["format"] == "png" for stem in pngs)
    table_file = next(wandb_dir.glob("files/media/table/results_*.table.json"))
    table = json.loads(table_file.read_text())
    rows = read_results(out_dir / "results.parquet")
    assert len(table["data"]) == 7 and len(rows) > 7
    prompts = set(rows.prompt)
    assert all(row[table["columns"].index("prompt")] in prompts for row in table["data"])
    artifact = next(r["artifact"] for r in records if r["type"] == "artifact" and r["artifact"]["type"] == "results")
    assert artifact["name"] == f"results-{summary['run']['run_id']}"
    stored = {c["path"]: c["local_path"] for c in artifact["manifest"]["contents"]}
    assert sorted(stored) == ["config.json", "results.parquet", "summary.json"]
    assert all(Path(local).read_bytes() == (out_dir / name).read_bytes() for name, local in stored.items())

    # nothing of W&B's went to the home folder: caches and staging stay under wandb.dir
    assert not (tmp_path / "home").exists()
    assert (tmp_path / "wandb" / "cache").is_dir() and "WANDB_CACHE_DIR" not in os.environ


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed once the socket is: connections are refused at once


def test_unreachable_server_warns_and_loses_nothing(run_folder, tmp_path):
    """mode=online with a server that refuses connections: a warning, the results untouched, no hang."""
    _, out_dir = run_folder
    before = _digest(out_dir)
    code = (
        "import sys; from faithfulness import tracking; from faithfulness.config.sections import Wandb\n"
        f"opts = Wandb(mode='online', project='faithfulness', entity=None, group=None, tags=(), dir={str(tmp_path)!r}, "
        "table_rows=5000, timeout_s=10)\n"
        f"print('returned', tracking.log_run({str(out_dir)!r}, opts))\n"
    )
    env = {
        **os.environ,
        "WANDB_BASE_URL": f"http://127.0.0.1:{_closed_port()}",
        "WANDB_API_KEY": "k" * 40,
        "HOME": str(tmp_path / "home"),
    }
    env.pop("WANDB_MODE", None)
    done = run_in_group([sys.executable, "-c", code], env, timeout=150)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "returned None" in done.stdout
    assert "warning: W&B logging failed" in done.stderr and str(out_dir) in done.stderr
    assert _digest(out_dir) == before
    assert "k" * 40 not in done.stdout + done.stderr  # the key is never echoed
    assert not any("k" * 40 in p.read_text(errors="ignore") for p in tmp_path.rglob("*") if p.is_file())
    assert not (tmp_path / "home").exists()
