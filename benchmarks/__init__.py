"""asv (airspeed velocity) benchmarks of fastconv; see ``asv.conf.json``.

``bench_conv2d`` holds the suite, ``common`` the layer shapes, data and the
float64 reference it shares. The suite only uses the public API
(``fastconv.conv2d``), so it runs against every commit of the history; a
parameter combination an older commit cannot run is skipped.
"""
