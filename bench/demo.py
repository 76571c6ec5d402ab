"""Wall time of the main job, `ecgdiff demo`, per stage and in all, on this machine. Prints JSON.

    python bench/demo.py [--scale 1] [--device cpu] [--out DIR]

The target (issue 10): the default scale under 15 minutes on 2 CPU cores. The run is `run_demo` itself, with its
progress bars off; `cpu_count` and `torch_threads` say what it ran on.
"""
import argparse, json, os, tempfile, time
from pathlib import Path
import torch
from ecgdiff.demo import run_demo

p = argparse.ArgumentParser()
p.add_argument('--scale', type=float, default=1.)
p.add_argument('--device', default='cpu')
p.add_argument('--seed', type=int, default=0)
p.add_argument('--out', default=None)
a = p.parse_args()
out = Path(a.out or tempfile.mkdtemp(prefix='ecgdiff_bench_demo_'))/'demo'
t = time.perf_counter()
s = run_demo(out, scale=a.scale, device=a.device, seed=a.seed, progress=False)
total = time.perf_counter() - t
print(json.dumps(dict(scale=a.scale, device=a.device, cpu_count=os.cpu_count(), torch_threads=torch.get_num_threads(),
                      total_s=round(total, 1), total_min=round(total/60, 2), target_min=15, stages_s=s['seconds'],
                      kaggle_round_trip_db=s['roundtrip']['kaggle_score_db'], out=str(out)), indent=1))
