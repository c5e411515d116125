"""asv (airspeed velocity) benchmarks of fastconv; see ``asv.conf.json``.

Only asv benchmarks live here (one-off tuning scripts are in ``tools/tuning/``).
``bench_conv2d``, ``bench_layer`` and ``bench_network`` (ResNet-50's 53
convolutions as one timing) hold the suite; ``common`` the data, the
skips, and the layer tables, timing and float64 reference it loads from
``src/fastconv/_benchmarking/``. The suite only uses the public API
(``fastconv.conv2d``, ``fastconv.Conv2d``), so it runs against every commit of
the history; a parameter combination an older commit cannot run is skipped.
"""
