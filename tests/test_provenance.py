"""Where a run's results go: a folder per config, always inside results_dir whatever the model's name."""

import pytest

from faithfulness.loading.hydra import compose
from faithfulness.loading.rules import load
from faithfulness.provenance import results_dir


@pytest.mark.parametrize("name", ["..", "../../outside", "/abs/name", "/", "a/../../b"])
def test_results_never_leave_results_dir_whatever_the_model_name(name, tmp_path):
    cfg = compose([f"results_dir={tmp_path}/results"])
    folder = results_dir(load({**cfg, "model": {**cfg["model"], "name": name}}))
    assert folder.resolve().is_relative_to((tmp_path / "results").resolve())
    assert folder.relative_to(tmp_path / "results").parts[0] == "addition-d3-o2"
    assert len(folder.relative_to(tmp_path / "results").parts) == 3  # task / model / run: the name is one part


def test_ordinary_model_names_are_kept_as_they_are(tmp_path):
    cfg = compose([f"results_dir={tmp_path}", "model=smollm2-135m"])
    assert results_dir(load(cfg)).parent.name == "smollm2-135m-instruct"
