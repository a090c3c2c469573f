"""run.py as a user runs it: bad input fails fast with one clear line; a real run on SmolLM2-135M."""

import json
from pathlib import Path

import pytest

from faithfulness.loading.rules import load
from faithfulness.results import read_results
from faithfulness.summaries import summarise_run, summary_options
from tests.conftest import run_cli


@pytest.mark.parametrize(
    "overrides,needle",
    [
        (["digits=0"], "digits=0 is not allowed: must be a whole number from 1 to 17"),
        (["digits=abc"], "digits='abc' is not allowed"),
        (["n=-1"], "n=-1 is not allowed"),
        (["samples=0"], "samples=0 is not allowed"),
        (["prompt_format=xml"], "prompt_format='xml' is not allowed"),
        (["perturbations=[early_answering,nope]"], "perturbations=['nope'] is not allowed"),
        (["model=hf", "model.path=/no/such/model"], "model.path='/no/such/model' is not a model directory"),
        (["model=hf"], "model.path"),
        (["answer.extract=loose"], "answer.extract='loose' is not allowed: choose 'strict' or 'flexible'"),
        (["mistakes.writer=magic"], "mistakes.writer='magic' is not allowed: choose one of ['rule', 'model', 'auto']"),
        (["task=mmlu", "subject=astrology"], "subject='astrology' is not allowed for mmlu: choose 'all' or one of 57"),
        (["task=arc_easy", "split=train"], "split='train' is not allowed for arc_easy"),
        (["task=arc_easy", "n=100000"], "n=100000 is not allowed: arc_easy-validation has 570 items"),
        (["task=arc_easy", "n_options=1"], "n_options=1 is not allowed"),
        (["task=arc_easy", "data_source=web"], "data_source='web' is not allowed"),
        (
            ["mistakes.model=other-model"],
            "mistakes.model='other-model' is not allowed: choose null (the subject model), a model config",
        ),
        (
            ["task=arc_easy", "perturbations=[no_cot,biased_context]", "biased_context.hints=[oracle]"],
            "biased_context.hints=['oracle'] is not allowed: unknown hint kind",
        ),
        (
            [
                "task=arc_easy",
                "perturbations=[biased_context]",
                "biased_context.templates.turpin.text='I think ({answer})'",
            ],
            "biased_context.templates.turpin.text='I think ({answer})' is not allowed: must contain {question}",
        ),
        (
            ["perturbations=[biased_context]", "biased_context.hints=[professor]"],
            "hint 'professor' is not allowed for task=addition: it names an answer of type letter and needs a task with options",
        ),
        (["task=sycophancy", "subdomain=philosophy"], "subdomain='philosophy' is not allowed"),
        (
            ["model=smollm2-135m", "model.packages=['no-such-faithfulness-model-pkg==9.9.9']", "cache_dir={tmp}/cache"],
            "could not be fetched with pip",
        ),
        (["model=smollm2-135m", "model.sha256=" + "0" * 64], "expected " + "0" * 64),
        # issue 17: values vLLM or scipy refused only after the engine started, or nobody refused
        (["engine.kv_cache_gib=0.5"], "engine.kv_cache_gib=0.5 is not allowed: must be a whole number ≥ 1"),
        (["engine.max_model_len=16"], "engine.max_model_len=16 is not allowed: must be null or ≥ 920"),
        (["store_chunk=abc"], "store_chunk='abc' is not allowed: must be a whole number ≥ 1"),
        (["perturbations=[]"], "perturbations=[] is not allowed: name at least one of"),
        (["filler.points=-1"], "filler.points=-1 is not allowed: must be a whole number ≥ 2"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_code_2(overrides, needle, tmp_path):
    overrides = [o.replace("{tmp}", str(tmp_path)) for o in overrides]
    done = run_cli(
        "n=1", *overrides, f"results_dir={tmp_path}", timeout=300
    )  # n=1 first: a bug must not start a long run
    assert done.returncode == 2, done.stderr[-2000:]
    assert needle in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.rglob("*.parquet")) and not list(
        tmp_path.rglob("requests.sqlite")
    )  # no results folder made


@pytest.mark.parametrize("mode", [[], ["-m"]])
@pytest.mark.parametrize(
    "override,needle",
    [
        (
            "task=nope",
            "task=nope is not allowed: no config task/nope; choose one of [addition, aqua, arc_challenge, arc_easy, hellaswag, logiqa, mmlu, openbookqa, sycophancy, truthfulqa]",
        ),
        (
            "model=nope",
            "model=nope is not allowed: no config model/nope; choose one of [deepseek-r1-distill-qwen-1.5b, ",
        ),
        ("nokey=1", "Could not override 'nokey'; To append to your config use +nokey=1"),
    ],
)
def test_hydras_own_errors_are_one_line_and_exit_code_2(mode, override, needle, tmp_path):
    done = run_cli(*mode, override, f"hydra.run.dir={tmp_path}/run", f"hydra.sweep.dir={tmp_path}/sweep", timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.startswith("error: " + needle) and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_filesystem_and_network_problems_are_one_line_and_exit_code_3(tmp_path):
    (tmp_path / "file").write_text("")
    done = run_cli("n=1", f"results_dir={tmp_path / 'file'}", timeout=120)
    assert (
        done.returncode == 3
        and done.stderr
        == f"error: results_dir='{tmp_path / 'file'}' cannot be used: {tmp_path / 'file'} is a file, not a folder\n"
    )
    # a hub id with no way to the hub: one line naming the host, at once instead of a minute of retries
    done = run_cli(
        "n=1",
        "model=hf",
        "model.path=org/model",
        f"results_dir={tmp_path}",
        env={"HF_ENDPOINT": "http://127.0.0.1:9"},
        timeout=120,
    )
    assert done.returncode == 3, done.stderr[-2000:]
    assert done.stderr.startswith(
        "error: model.path='org/model' needs the Hugging Face hub, but 127.0.0.1:9 cannot be reached"
    )
    assert len(done.stderr.strip().splitlines()) == 1 and not list(tmp_path.rglob("requests.sqlite"))


@pytest.mark.slow
def test_end_to_end_all_four_tests_on_packaged_smollm2(tmp_path):
    done = run_cli(
        "task=addition",
        "digits=2",
        "model=smollm2-135m",
        "n=6",
        "engine.enforce_eager=true",
        "perturbations=[no_cot,early_answering,adding_mistakes,filler_tokens,paraphrasing]",
        "bootstrap_resamples=200",
        f"results_dir={tmp_path}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out_dir = Path(done.stdout.strip().splitlines()[-1].removeprefix("results: "))
    assert out_dir.parent.parent == tmp_path / "addition-d2-o2"
    for line in (
        "accuracy with CoT",
        "no CoT: accuracy",
        "% same, 0% of CoT steps shown",
        "early answering: AOC",
        "adding mistakes: AOC",
        "accuracy, 100% of CoT paraphrased",
        "filler tokens: accuracy",
        "mean P(original answer)",
        "unparsed answers",
        "95% CI",
    ):
        assert line in done.stdout

    df = read_results(out_dir / "results.parquet")
    summary = json.loads((out_dir / "summary.json").read_text())
    assert df.model.unique().tolist() == ["smollm2-135m-instruct"]
    assert df.model_revision.iloc[0] == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    assert sorted(df.item_id.unique()) == list(range(6))
    assert (df.digits == 2).all() and (df.correct_answer.astype(int) < 200).all()
    assert set(df.perturbation) == {
        "original",
        "no_cot",
        "early_answering",
        "adding_mistakes",
        "filler_tokens",
        "paraphrasing",
    }
    # a real model gives parseable answers: the comparison machinery sees same and changed rows
    assert (df.outcome != "unparsed").mean() > 0.5 and {"same", "changed"} <= set(df.outcome)
    orig = df[df.perturbation == "original"].set_index(["item_id", "sample"])
    early = df[df.perturbation == "early_answering"]
    assert early.groupby(["item_id", "sample"]).size().eq(orig.n_steps + 1).all()
    # regenerated CoTs keep the perturbed prefix byte for byte; a rule mistake changed its step
    mistakes = df[df.perturbation == "adding_mistakes"]
    assert len(mistakes) and mistakes.regenerated.all() and (mistakes.edited_text != mistakes.replaced_text).all()
    for row in mistakes.itertuples():
        steps_before = row.cot[: row.cot.index(row.replaced_text)] if row.replaced_text in row.cot else None
        assert steps_before is not None and row.shown_cot.startswith(steps_before + row.edited_text)
    # filler lengths run from 0 to each question's longest CoT in steps of 5 tokens (the paper's)
    lengths = summary["filler_lengths"]
    assert lengths["step"] == 5 and summary["filler_string"] == " ..."
    for item, group in df[df.perturbation == "filler_tokens"].groupby("item_id"):
        assert sorted(group.level.unique()) == list(range(0, lengths["longest_cot_tokens"][str(item)] + 1, 5))
        assert (group.fraction == group.level / lengths["longest_cot_tokens"][str(item)]).all()
    # probabilities: every parsed original answer was scored, and an argmax answer has the highest mass
    assert orig.logprob_original[orig.answer.notna()].notna().all()
    assert (orig.logprob_original[orig.answer.notna()] <= 0).all()
    # fp32 determinism: re-asking the full CoT reproduces the original answer
    assert summary["metrics"]["early_answering"]["reask_agreement"]["value"] == 1.0
    config = json.loads((Path(summary["run"]["results_dir"]) / "config.json").read_text())
    recomputed = summarise_run(df, summary_options(load(config)))  # the summary is a pure function of the table
    assert json.dumps(recomputed["metrics"], sort_keys=True) == json.dumps(summary["metrics"], sort_keys=True)
    # every stage ran in as few engine calls as store_chunk (256) allows, none of it from a store (fresh folder)
    assert all(
        stage["calls"] == -(-stage["to_engine"] // 256) and stage["from_store"] == 0
        for stage in summary["stages"].values()
    ), summary["stages"]
    assert summary["stages"]["chains of thought"]["calls"] == summary["stages"]["forced answers"]["calls"] == 1
    answers = summary["stages"]["forced answers"]
    assert answers["cached_tokens"] > 0.5 * answers["prompt_tokens"]
    for name in ("early_answering", "adding_mistakes", "filler_tokens", "paraphrasing"):
        for suffix in ("png", "svg"):
            assert (out_dir / f"{name}.{suffix}").stat().st_size > 1000


@pytest.mark.slow
def test_model_written_mistakes_and_paraphrases_on_packaged_smollm2(tmp_path):
    done = run_cli(
        "model=smollm2-135m",
        "digits=2",
        "n=4",
        "mistakes.writer=model",
        "engine.enforce_eager=true",
        "perturbations=[adding_mistakes,paraphrasing]",
        "bootstrap_resamples=100",
        f"results_dir={tmp_path}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out_dir = Path(done.stdout.strip().splitlines()[-1].removeprefix("results: "))
    df = read_results(out_dir / "results.parquet")
    summary = json.loads((out_dir / "summary.json").read_text())
    orig = df[df.perturbation == "original"]
    for name in ("adding_mistakes", "paraphrasing"):
        rows = df[df.perturbation == name]
        skipped = [s for s in summary["skipped"] if s["perturbation"] == name]
        # every level was either rewritten by the model (and used) or counted as skipped, never both
        expected = int(orig.n_steps.sum())
        assert len(rows) + len(skipped) == expected, (name, len(rows), len(skipped), expected)
        assert (rows.edited_text.str.strip() != rows.replaced_text.str.strip()).all()
        assert all(
            row.shown_cot.startswith(row.cot[: row.cot.index(row.replaced_text)] + row.edited_text)
            for row in rows.itertuples()
            if name == "adding_mistakes"
        )
        assert all(s["reason"].endswith("rewrite empty or identical") for s in skipped)
    para = df[df.perturbation == "paraphrasing"]
    assert all(row.shown_cot.startswith(row.edited_text) for row in para.itertuples())


def test_dash_v_becomes_the_verbose_override_hydra_understands():
    from run import expand_verbose_flag

    assert expand_verbose_flag(["run.py", "-v", "n=3"]) == ["run.py", "n=3", "verbose=true"]
    assert expand_verbose_flag(["run.py", "-m", "--verbose", "digits=1,2"]) == [
        "run.py",
        "-m",
        "digits=1,2",
        "verbose=true",
    ]
    assert expand_verbose_flag(["run.py", "n=3"]) == ["run.py", "n=3"]
