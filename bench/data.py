"""Data-layer timings: simulate, write_ptbxl, first and cached load_ptbxl. Prints JSON.

    python bench/data.py [--n 1000]
"""
import argparse, json, tempfile, time
from pathlib import Path
import numpy as np
from ecgdiff.data import simulate_ecg, write_ptbxl, load_ptbxl

p = argparse.ArgumentParser()
p.add_argument('--n', type=int, default=1000)
a = p.parse_args()
res = dict(n_records=a.n)
t = time.perf_counter()
[simulate_ecg(['NORM', 'SR'], seed=i) for i in range(50)]
res['simulate_ms_per_record_500hz'] = (time.perf_counter() - t)/50*1000
with tempfile.TemporaryDirectory() as d:
    t = time.perf_counter()
    c = write_ptbxl(Path(d)/'c', n_records=a.n, progress=False)
    res['write_ptbxl_s'] = time.perf_counter() - t
    for fs in (100, 500):
        t = time.perf_counter()
        ds = load_ptbxl(c, fs=fs, progress=False)
        t1 = time.perf_counter()
        ds2 = load_ptbxl(c, fs=fs, progress=False)
        t2 = time.perf_counter()
        assert np.array_equal(np.asarray(ds.X[-1]), np.asarray(ds2.X[-1]))
        res[f'load_{fs}hz_first_s'], res[f'load_{fs}hz_cached_s'] = t1 - t, t2 - t1
        res[f'cached_over_first_{fs}hz'] = (t2 - t1)/(t1 - t)
print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in res.items()}, indent=1))
