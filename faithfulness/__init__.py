"""faithfulness: measure whether a language model's chain of thought drives its answer.

Reproduces Lanham et al. 2023, *Measuring Faithfulness in Chain-of-Thought Reasoning*. The pipeline
(`faithfulness.pipeline.run`) reads top to bottom: task → CoTs → perturbed prompts → one batched
engine pass → parsed answers → results table → summary.
"""

__version__ = "0.1.0"
# bump when results columns change (3: any task, string answers; 4: two readings, reasoning models;
# 5: hints and bias targets)
SCHEMA_VERSION = 5
