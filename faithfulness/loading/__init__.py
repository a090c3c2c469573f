"""From Hydra's config to the checked, typed one, once in ``run.py``.

* ``rules.py``: :func:`~faithfulness.loading.rules.load`, every rule that relates keys, once, before any folder;
* ``hydra.py``: resolvers, composing outside a Hydra app, Hydra's errors in one line, model config files.
"""
