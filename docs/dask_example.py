"""fastconv.dask on a LocalCluster: a batch of images and one large image,
each timed against one process running fastconv on the whole array
(docs/dask.md).

    python docs/dask_example.py                 # the figures of docs/dask.md
    python docs/dask_example.py --small         # a quick run (tests/test_dask.py)

Each case runs on the cluster, in one process with Dask's threaded
scheduler, and in one process without Dask. All compute the same thing, the convolution and the sum of its
result (so that no 3 GB result has to be gathered), from data already in
memory: the cluster's input is generated on the workers and persisted before
the clock starts. Each figure is the best of ``--repeats`` runs. The peak
memory of each worker process is its ``ru_maxrss`` (the peak resident set
since it started, the persisted input included).
"""

import argparse
import resource
import time

import dask.array as da
import numpy as np
from distributed import Client, LocalCluster, wait

import fastconv
import fastconv.dask


def best_time(run, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        value = run()
        times.append(time.perf_counter() - start)
    return min(times), value


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--small", action="store_true", help="tiny sizes, one repeat")
    args = parser.parse_args()
    batch, side, image, tile = (256, 224, 8192, 2048) if not args.small else (8, 32, 256, 64)
    repeats = 1 if args.small else args.repeats
    rng = np.random.default_rng(0)

    # A 3x3 layer, 3 -> 64 channels, as the first layer of an image network.
    layer = fastconv.Conv2d(rng.standard_normal((64, 3, 3, 3)).astype(np.float32),
                            rng.standard_normal(64).astype(np.float32), padding=1,
                            activation="relu")
    # One 3x3 filter over one single-channel image.
    kernel = rng.standard_normal((1, 1, 3, 3)).astype(np.float32)

    results = {}
    cases = [
        ("batch", f"{batch} images 3x{side}x{side} -> 64 channels, 3x3",
         lambda: da.random.default_rng(1).standard_normal(
             (batch, 3, side, side), dtype=np.float32,
             chunks=(16 if not args.small else 2, 3, side, side)),
         lambda x: fastconv.dask.apply(layer, x), layer),
        ("image", f"one {image}x{image} image, 1 -> 1 channel, 3x3, chunks {tile}x{tile}",
         lambda: da.random.default_rng(2).standard_normal(
             (1, 1, image, image), dtype=np.float32, chunks=(1, 1, tile, tile)),
         lambda x: fastconv.dask.conv2d(x, kernel, padding=1),
         lambda x: fastconv.conv2d(x, kernel, padding=1)),
    ]
    for name, title, make_x, on_dask, on_numpy in cases:
        # A fresh cluster per case, so that each worker's peak is this case's.
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          dashboard_address=None, silence_logs=40) as cluster, \
                Client(cluster) as client:
            print(f"\ncluster: {args.workers} worker processes x 1 thread; threads per task "
                  f"{sorted(set(fastconv.dask._cluster_threads().values()))}")
            x = make_x()
            x = x.persist()
            wait(x)
            before = client.run(peak_rss_mb)
            seconds, total = best_time(lambda: float(on_dask(x).sum().compute()), repeats)
            after = client.run(peak_rss_mb)
            x_np = x.compute()
            if name == "batch":  # one process, the batch in chunks of 16 as above
                def single():
                    return sum(float(on_numpy(x_np[i:i + 16]).sum(dtype=np.float64))
                               for i in range(0, len(x_np), 16))
            else:
                def single():
                    return float(on_numpy(x_np).sum(dtype=np.float64))
            one, reference = best_time(single, repeats)
            assert np.isclose(total, reference, rtol=1e-4), (total, reference)
            # Dask's threaded scheduler in this process, on the same chunks
            local = da.from_array(x_np, chunks=x.chunks)
            threaded, total_threaded = best_time(
                lambda: float(on_dask(local).sum().compute(scheduler="threads")), repeats)
            assert np.isclose(total_threaded, reference, rtol=1e-4)
            pixels = x.shape[0] * x.shape[2] * x.shape[3]
            print(f"\n{title}")
            print(f"  LocalCluster: {seconds:.3f} s ({pixels / seconds / 1e6:.1f} Mpixel/s)")
            print(f"  one process:  {one:.3f} s ({pixels / one / 1e6:.1f} Mpixel/s), "
                  f"{fastconv.get_num_threads() or 'default'} threads")
            print(f"  threaded scheduler, one process: {threaded:.3f} s "
                  f"({pixels / threaded / 1e6:.1f} Mpixel/s)")
            print(f"  cluster / one process: {one / seconds:.2f}x the throughput")
            print("  peak RSS per worker, MB (input persisted -> after the runs): "
                  + ", ".join(f"{before[w]:.0f} -> {after[w]:.0f}" for w in sorted(before)))
            results[name] = (seconds, one)
            del x
    return results


if __name__ == "__main__":
    main()
