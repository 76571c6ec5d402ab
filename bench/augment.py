"""Augmentation-study timings: classifier training and inference throughput (bf16 on CUDA), and the bootstrap
metrics at PTB-XL's scale (fold 10 of the 'all' task: ~2,200 records, 71 labels). Prints JSON.

    python bench/augment.py [--device cuda] [--archs resnet1d50,xresnet1d101] [--bs 64] [--steps 20]
"""
import argparse, json, time
import numpy as np
import torch
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.torch_core import default_device
from ecgdiff.augment import bootstrap_metrics, classifier_learner, paired_bootstrap, predict

p = argparse.ArgumentParser()
p.add_argument('--device', default=None)
p.add_argument('--archs', default='resnet1d50,xresnet1d101')
p.add_argument('--bs', type=int, default=64)
p.add_argument('--steps', type=int, default=20)
p.add_argument('--L', type=int, default=1000)
p.add_argument('--n_labels', type=int, default=71)
a = p.parse_args()
dev = torch.device(a.device) if a.device else default_device()
cuda = dev.type == 'cuda'
sync = torch.cuda.synchronize if cuda else (lambda: None)
res = dict(device=torch.cuda.get_device_name(dev) if cuda else 'cpu', bs=a.bs, L=a.L, n_labels=a.n_labels)

n = a.bs*(a.steps + 3)
X = torch.randn(n, 12, a.L)
Y = (torch.rand(n, a.n_labels) < .1).float()
for arch in a.archs.split(','):
    ds = list(zip(X, Y))
    dls = DataLoaders(DataLoader(ds, bs=a.bs, shuffle=True, drop_last=True), DataLoader(ds[:a.bs], bs=a.bs), device=dev)
    learn = classifier_learner(dls, arch)
    if cuda: torch.cuda.reset_peak_memory_stats(dev)
    times = []
    class _T(__import__('fastai.callback.core', fromlist=['Callback']).Callback):
        def before_batch(self):
            sync()
            self.t = time.perf_counter()
        def after_batch(self):
            if self.training:
                sync()
                times.append(time.perf_counter() - self.t)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3, cbs=_T())
    step = float(np.median(times[3:])) if len(times) > 3 else float(np.median(times))
    r = dict(params=sum(q.numel() for q in learn.model.parameters()),
             precision=(str(learn.cbs.filter(lambda c: type(c).__name__ == 'MixedPrecision')[0].amp_mode) if cuda
                        else 'fp32'),
             train_step_s=step, train_samples_per_s=a.bs/step)
    if cuda: r['train_peak_mem_gb'] = torch.cuda.max_memory_allocated(dev)/1e9
    m = learn.model.eval()
    mean, std = np.zeros((12, 1), np.float32), np.ones((12, 1), np.float32)
    Xn = X.numpy()
    predict(m, Xn[:a.bs], mean, std, bs=a.bs, device=dev)
    sync()
    t = time.perf_counter()
    predict(m, Xn, mean, std, bs=256, device=dev)
    sync()
    r['infer_samples_per_s'] = n/(time.perf_counter() - t)
    res[arch] = r

rng = np.random.default_rng(0)
yt = (rng.uniform(size=(2200, a.n_labels)) < .08).astype(int)
pt = np.clip(yt*.3 + rng.uniform(size=yt.shape)*.8, 0, 1)
t = time.perf_counter()
bootstrap_metrics(yt, pt, n_boot=1000)
res['bootstrap_metrics_s_2200x71_1000'] = time.perf_counter() - t
t = time.perf_counter()
paired_bootstrap(yt, pt, np.clip(pt + rng.normal(0, .05, pt.shape), 0, 1), n_boot=1000)
res['paired_bootstrap_s_2200x71_1000'] = time.perf_counter() - t
print(json.dumps(res, indent=1, default=lambda o: round(o, 4) if isinstance(o, float) else str(o)))
