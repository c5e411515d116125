"""Benchmarking shared by ``python -m fastconv bench``, the asv suite in
``benchmarks/`` and the tuning scripts in ``tools/tuning/`` (private).

* ``layers``: the :class:`~layers.Layer` description, the named layer tables
  and the ``--layers`` parser;
* ``timing``: interleaved best-of timing with settle calls;
* ``reference``: the float64 reference convolution and the error measure;
* ``systems``, ``report``, ``plot``, ``cli``: the bench command.

``layers``, ``timing`` and ``reference`` import nothing from fastconv: the asv
suite loads them from the source tree, so that it also runs against older
commits, whose installed fastconv has no ``_benchmarking``. The tests keep a
reference of their own (``tests/reference.py``), independent of this one.
"""
