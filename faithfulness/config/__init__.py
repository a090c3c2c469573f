"""The run config, built and checked once in ``run.py``, then passed down typed.

* ``sections.py``: every key's type, range and meaning (:class:`~faithfulness.config.sections.RunConfig`);
* ``fields.py``: how a plain block is checked against a section;
* ``rules.py``: :func:`~faithfulness.config.rules.load`, every rule that relates keys, once;
* ``hydra.py``: resolvers, composing outside a Hydra app, Hydra's errors in one line.
"""
