"""ECG image digitizer throughput: images/s of the classical baseline, of each learned stage and of the whole
learned pipeline, on batches of synthetic pages (bf16 autocast on CUDA). Prints JSON.

    python bench/digitizer.py [--device cuda] [--n 64] [--bs 16] [--checkpoints DIR] [--dpi 200]

Without --checkpoints the stages run with random weights built from configs/digitizer (same architecture, same
cost); stages 1 and 2 are then fed the true page geometry, so that each stage's time is measured on real work, and
`pipeline` is the time of the three stages chained (`pipeline_kind` says which). With trained checkpoints,
`pipeline` is `Digitizer.__call__` on the batch, image decoding of arrays included. `stage2_decode_...` is the CPU
decoding of stage 2 alone on perfect masks (what a trained model's output resembles).
"""
import argparse, json, time
from pathlib import Path
import numpy as np
import torch
from ecgdiff.digitizer import (Digitizer, build_stage_model, digitize_classical, load_stage_config, random_page,
                               render_page)

p = argparse.ArgumentParser()
p.add_argument('--device', default=None)
p.add_argument('--n', type=int, default=16)
p.add_argument('--bs', type=int, default=8)
p.add_argument('--dpi', type=float, default=200.)
p.add_argument('--checkpoints', default=None)
p.add_argument('--n_classical', type=int, default=None)
p.add_argument('--configs', default=str(Path(__file__).resolve().parents[1]/'configs'/'digitizer'))
a = p.parse_args()
dev = torch.device(a.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
cuda = dev.type == 'cuda'
sync = (lambda: torch.cuda.synchronize(dev)) if cuda else (lambda: None)

pages = [random_page(1000 + i, dpi=(a.dpi, a.dpi), strokes=False) for i in range(a.n)]
imgs, truths = [p[0] for p in pages], [p[1] for p in pages]

dg = Digitizer(a.checkpoints, device=dev, bs=a.bs)
trained = len(dg.models) == 3
for k in range(3):
    if k not in dg.models:
        cfg = load_stage_config(Path(a.configs)/f'stage{k}.yaml')
        torch.manual_seed(k)
        dg.models[k], dg.cfgs[k] = build_stage_model(cfg).to(dev).eval(), cfg

def timed(f, *args):
    "Seconds taken by `f(*args)`, after a warm-up call on the first batch."
    f(*[x[:a.bs] for x in args])
    sync()
    t = time.perf_counter()
    out = f(*args)
    sync()
    return time.perf_counter() - t, out

true0 = [dict(layout=t.layout, speed=t.speed, gain=t.gain, duration=t.duration, geom=t.geom, H0=t.H, notes=[])
         for t in truths]
true1 = [dict(r, G=t.H, ppmm=t.ppmm, n_grid=0) for r, t in zip(true0, truths)]
t0, _ = timed(dg.stage0, imgs)
t1, _ = timed(dg.stage1, imgs, true0)
t2, out = timed(lambda i, s: dg.stage2(i, s, 500), imgs, true1)
if trained: tp, _ = timed(dg, imgs)
else: tp = t0 + t1 + t2
# stage 2's CPU decoding alone, on the perfect masks a trained model approaches (random weights give dense noise)
s2 = dg.cfgs[2].ppmm
S2 = np.diag([s2, s2, 1.])
masks = [render_page(t.x, t.fs, t.layout, t.speed, t.gain, 'none', 25.4*s2, t.leads, t.lw, labels=False, pulses=False,
                     header=None)[1].masks().astype(np.float32) for t in truths[:8]]
t = time.perf_counter()
for r, m in zip(true1, masks): dg._decode(r, m, s2, S2, 500)
td = (time.perf_counter() - t)/len(masks)
nc = a.n_classical or min(a.n, 8)
sync()
t = time.perf_counter()
for im in imgs[:nc]: digitize_classical(im)
tc = time.perf_counter() - t
from ecgdiff.digitizer import _straighten, _digitize_rows, _digitize_pulses   # the classical path's stages
cs = {}
for name, f in (('straighten', lambda im, p: _straighten(im)), ('rows', lambda im, p: _digitize_rows(im, prep=p)),
                ('pulses', lambda im, p: _digitize_pulses(im, prep=p))):
    preps = [_straighten(im) for im in imgs[:nc]] if name != 'straighten' else [None]*nc
    t = time.perf_counter()
    for im, pr in zip(imgs[:nc], preps):
        try: f(im, pr)
        except Exception: pass
    cs[name] = nc/(time.perf_counter() - t)

res = dict(device=torch.cuda.get_device_name(dev) if cuda else 'cpu', torch=torch.__version__,
           threads=torch.get_num_threads(),
           n=a.n, bs=a.bs, dpi=a.dpi, image_px=int(np.mean([im.shape[0]*im.shape[1] for im in imgs])),
           weights='trained' if trained else 'random',
           pipeline_kind='Digitizer.__call__' if trained else 'stages chained on true geometry',
           encoders={k: f"{dg.cfgs[k].model.encoder}/w{dg.cfgs[k].model.width}" for k in range(3)},
           classical_stages_images_per_s=cs,
           images_per_s=dict(classical=nc/tc, stage0=a.n/t0, stage1=a.n/t1, stage2=a.n/t2, pipeline=a.n/tp),
           s_per_image=dict(classical=tc/nc, stage0=t0/a.n, stage1=t1/a.n, stage2=t2/a.n, pipeline=tp/a.n),
           stage2_decode_s_per_image_perfect_masks=td, stage2_ppmm=s2)
if cuda: res['peak_mem_gb'] = torch.cuda.max_memory_allocated(dev)/1e9
print(json.dumps(res, indent=1))
