"""Hydra's own errors (unknown group, key, override syntax) as one line."""

import pytest
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from faithfulness.loading.hydra import compose, hydra_error_line


@pytest.mark.parametrize(
    "override,expected",
    [
        (
            "model=nope",
            "model=nope is not allowed: no config model/nope; choose one of [deepseek-r1-distill-qwen-1.5b, ",
        ),
        (
            "task=nope",
            "task=nope is not allowed: no config task/nope; choose one of [addition, aqua, arc_challenge, arc_easy, hellaswag, logiqa, mmlu, openbookqa, sycophancy, truthfulqa]",
        ),
        ("nokey=1", "Could not override 'nokey'; To append to your config use +nokey=1; Key 'nokey' is not in struct"),
        ("n=[1", "override 'n=[1': no viable alternative at input '[1'"),
    ],
)
def test_hydra_errors_become_one_line_naming_the_override(override, expected):
    with pytest.raises((HydraException, OmegaConfBaseException)) as error:
        compose([override])
    line = hydra_error_line(error.value)
    assert line.startswith(expected) and "\n" not in line and "search path" not in line
