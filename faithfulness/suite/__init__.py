"""The faithfulness tests, one module each: its pure perturbation, registered with its figures, lines and figure.

Importing this package registers them in ``faithfulness.registry.TESTS``, in the order of :data:`ORDER`:
the order of the printed table, of the figures and of ``perturbations=all``. A new test is one module
here (and its import below), or a :func:`~faithfulness.registry.register` call anywhere.
"""

from faithfulness.registry import TESTS, FaithfulnessTest, choosable, lookup, register
from faithfulness.suite import (  # noqa: F401 (each registers its test)
    adding_mistakes,
    biased_context,
    early_answering,
    filler_tokens,
    no_cot,
    paraphrasing,
)

# Lanham et al.'s order, then the bias test; a test registered later comes after these
ORDER = ("original", "no_cot", "early_answering", "adding_mistakes", "paraphrasing", "filler_tokens", "biased_context")
for _name in ORDER:
    TESTS[_name] = TESTS.pop(_name)

__all__ = ["TESTS", "FaithfulnessTest", "choosable", "lookup", "register"]
