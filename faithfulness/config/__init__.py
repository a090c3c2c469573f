"""The run config as typed sections: a leaf that every module below ``run.py`` reads.

* ``sections.py``: every key's type, range and meaning (:class:`~faithfulness.config.sections.RunConfig`);
* ``fields.py``: how a plain block is checked against a section.

``faithfulness/loading`` builds it once, in ``run.py``, from Hydra's config.
"""
