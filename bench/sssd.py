"""SSSD-ECG training and sampling speed: prints one JSON object.

Paper configuration (36 blocks, 256 channels, S4 state 64, 71 labels, L=1000) unless --quick (a tiny model, for a
CPU smoke run in a minute). Measured in one run, so that ratios are meaningful:

- training: seconds per optimiser step at batch 8 and samples/s for each batch size up to the first OOM (the best one
  is reported), peak memory; fastai Learner with the diffusion callback, EMA, bf16 MixedPrecision on CUDA;
- a reference-like baseline in the same process: fp32, the naive (materialising) Cauchy backend, the kernels
  recomputed at every training and sampling step (as the public implementation does); and ecgdiff's own path without
  the frozen-state kernel map (`ecgdiff.s4.FROZEN_MAP_MB = 0`: chunked Cauchy sums at every training step);
- sampling: samples/s for DDPM-200 and DDIM / DPM-Solver++(2M) at 50 and 20 steps, at batch 64 and 256, with the
  default inference levers (cached kernels, Toeplitz or FFT convolutions, bf16, CUDA graphs); steady state (a second
  batch after the set-up) and including set-up; peak memory;
- checks: the fast sampling path agrees with the fp32 FFT path, and (CUDA) the sampling loop makes no host-device
  synchronisation (torch.cuda.set_sync_debug_mode('error')).

    python bench/sssd.py --quick                      # CPU smoke run
    python bench/sssd.py --blocks 4 --train-bs 4 --skip-sample --threads 2   # CPU training: 4 blocks of paper widths
    python bench/sssd.py --device cuda --out sssd.json    # the GPU measurement (about 10 minutes on an H200)

Reference numbers (public SSSD-ECG as shipped, H200): 0.357 s/step at batch 8 (22 samples/s, 18.4 GB); DDPM-200
1.08 samples/s at batch 64. Targets: training >= 20x 22 = 440 samples/s; sampling >= 100 samples/s with <= 50 steps.
"""
import argparse, json, platform, sys, time, traceback

import torch


def _sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize(dev)

def _reset_peak(dev):
    if dev.type == 'cuda':
        _sync(dev)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)

def _peak_gb(dev):
    return round(torch.cuda.max_memory_allocated(dev)/2**30, 2) if dev.type == 'cuda' else None

def _oom(e):
    return isinstance(e, torch.cuda.OutOfMemoryError) or 'out of memory' in str(e).lower()


def _model(cfg, dev, **kw):
    from ecgdiff.sssd import SSSD_ECG
    torch.manual_seed(0)
    return SSSD_ECG(**cfg, **kw).to(dev)


def train_speed(cfg, dev, bs, n_steps, warmup, L, precision='auto', backend=None, compile=False):
    "Seconds per step (after `warmup` steps) and peak memory of fastai training at batch `bs`."
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader
    from fastai.callback.core import Callback
    from ecgdiff.sssd import sssd_learner
    model = _model(cfg, dev, **({'backend': backend} if backend else {}))
    n = bs*(n_steps + warmup)
    g = torch.Generator().manual_seed(0)
    X, Y = torch.randn(n, 8, L, generator=g)*.3, (torch.rand(n, model.n_labels, generator=g) < .05).float()
    items = list(zip(X, Y))
    dls = DataLoaders(DataLoader(items, bs=bs, shuffle=False, drop_last=True), DataLoader(items[:bs], bs=bs),
                      device=dev)
    dls.labels = model.labels

    class Timer(Callback):
        order = 99
        def before_batch(self):
            if self.training and self.iter == warmup:
                _sync(dev)
                self.t0 = time.perf_counter()
        def after_batch(self):
            if self.training and self.iter == n_steps + warmup - 1:
                _sync(dev)
                self.t1 = time.perf_counter()

    timer = Timer()
    learn = sssd_learner(torch.compile(model) if compile else model, dls, precision=precision, cbs=timer)
    _reset_peak(dev)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, lr=2e-4)
    s = (timer.t1 - timer.t0)/n_steps
    return dict(bs=bs, s_per_step=round(s, 4), samples_per_s=round(bs/s, 1), peak_gb=_peak_gb(dev))


def sample_speed(model, dev, sampler, steps, bs, L, conv, graph, compile=False):
    "Steady-state samples/s (second batch) and samples/s including set-up (kernels, Toeplitz matrices, graph capture)."
    from ecgdiff.sssd import sample_sssd
    lab = torch.zeros(2*bs, model.n_labels)
    lab[:, model.labels.index('NORM')] = lab[:, model.labels.index('SR')] = 1
    _reset_peak(dev)
    st = {}
    t0 = time.perf_counter()
    sample_sssd(model, lab, sampler=sampler, n_steps=steps, L=L, bs=bs, conv=conv, cuda_graph=graph, compile=compile,
                progress=False, stats=st)
    tot = time.perf_counter() - t0
    return dict(sampler=sampler, steps=steps, bs=bs, conv=st['conv'], amp=st['amp'], cuda_graph=st['cuda_graph'],
                compile=compile,
                samples_per_s=round(bs/st['batch_s'][1], 2), samples_per_s_with_setup=round(2*bs/tot, 2),
                s_per_step=round(st['batch_s'][1]/steps, 5), prepare_s=round(st['prepare_s'], 3), peak_gb=_peak_gb(dev))


def baseline_sampling(model, dev, bs, L, steps):
    "Reference-like DDPM step time: fp32, FFT path, S4 kernels recomputed at every step, no CUDA graph."
    from ecgdiff.ddim import alpha_bar, sssd_ecg_betas, sample_ddpm, timesteps
    from ecgdiff.s4 import S4
    ab = alpha_bar(sssd_ecg_betas())
    s4s = [m for m in model.modules() if isinstance(m, S4)]
    def f(x, t, y):
        for m in s4s: m.clear_cache()
        return model(x, t, y)
    model.eval()
    x = torch.randn(bs, 8, L, device=dev)
    y = torch.zeros(bs, model.n_labels, device=dev)
    with torch.no_grad():
        sample_ddpm(f, x, ab, timesteps(200, 200, 'trailing')[:1], cond=(y,))      # warm-up
        _sync(dev)
        t0 = time.perf_counter()
        sample_ddpm(f, x, ab, timesteps(200, 200, 'trailing')[:steps], cond=(y,))
        _sync(dev)
    s = (time.perf_counter() - t0)/steps
    return dict(bs=bs, s_per_step=round(s, 4), ddpm200_samples_per_s=round(bs/(200*s), 3), timed_steps=steps)


def agreement(model, dev, L, bs=8):
    "Relative difference of DDIM-20 samples: default fast path vs fp32 FFT path without graphs (same noise)."
    from ecgdiff.sssd import sample_sssd
    lab = torch.zeros(bs, model.n_labels)
    lab[:, 0] = 1
    kw = dict(sampler='ddim', n_steps=20, L=L, seed=3, progress=False)
    a = sample_sssd(model, lab, amp='fp32', conv='fft', cuda_graph=False, **kw)
    out = {}
    for conv in ('toeplitz', 'fft'):
        try: b = sample_sssd(model, lab, conv=conv, **kw)
        except Exception as e:
            out[conv] = f'failed: {type(e).__name__}: {e}'[:200]
            continue
        out[conv] = round(float((b - a).norm()/a.norm()), 5)
    return out


def sync_free(model, dev, L, bs=4):
    "True if 3 sampling steps (graph replay, DDPM noise, step arithmetic) run under set_sync_debug_mode('error')."
    if dev.type != 'cuda': return None
    from ecgdiff.sssd import prepare_inference, release_inference, _Denoiser, _CUDAGraphed
    from ecgdiff.ddim import alpha_bar, sssd_ecg_betas, sample_ddpm, timesteps
    ab = alpha_bar(sssd_ecg_betas())
    prepare_inference(model, L, 'fft')
    fn = _CUDAGraphed(_Denoiser(model, 1., torch.bfloat16))
    x = torch.randn(bs, 8, L, device=dev)
    y = torch.zeros(bs, model.n_labels, device=dev)
    g = torch.Generator(device=dev).manual_seed(0)
    try:
        with torch.no_grad():
            # capture outside the check
            sample_ddpm(fn, x, ab, timesteps(200, 200, 'trailing')[:2], cond=(y,), generator=g)
            _sync(dev)
            torch.cuda.set_sync_debug_mode('error')
            try: sample_ddpm(fn, x, ab, timesteps(200, 200, 'trailing')[2:5], cond=(y,), generator=g)
            finally: torch.cuda.set_sync_debug_mode('default')
        return True
    except RuntimeError as e: return f'sync: {e}'[:300]
    finally: release_inference(model)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--quick', action='store_true', help='tiny model and sizes (CPU smoke run)')
    p.add_argument('--device', default=None, help='cuda or cpu (default: cuda if available)')
    p.add_argument('--train-bs', default=None, help='comma-separated training batch sizes (default 8,16,32,64,128,256)')
    p.add_argument('--sample-bs', default=None, help='comma-separated sampling batch sizes (default 64,256)')
    p.add_argument('--conv', default='auto', help="sampling S4 convolution: auto, toeplitz, fft or both")
    p.add_argument('--no-baseline', action='store_true', help='skip the reference-like baseline')
    p.add_argument('--compile', action='store_true',
                   help='measure with torch.compile (training and sampling; compiling takes minutes)')
    p.add_argument('--skip-train', action='store_true')
    p.add_argument('--skip-sample', action='store_true')
    p.add_argument('--threads', type=int, default=1, help='CPU threads (CPU runs)')
    p.add_argument('--blocks', type=int, default=0, help="residual blocks of the paper's widths (0: the paper's 36)")
    p.add_argument('--out', default=None, help='also write the JSON here')
    a = p.parse_args()
    dev = torch.device(a.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    if dev.type == 'cuda': torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    else: torch.set_num_threads(a.threads)
    from ecgdiff.sssd import SIZES
    from ecgdiff.s4 import cauchy_backend
    if a.quick:
        cfg, L = dict(SIZES['tiny'], s4_lmax=200), 200
        train_bs, sample_bs, n_steps, warmup = [2, 4], [4, 8], 2, 1
        samplers = [('ddpm', 200), ('ddim', 50), ('ddim', 20), ('dpmpp_2m', 20)]
    else:
        cfg, L = ({'num_res_layers': a.blocks} if a.blocks else {}), 1000
        train_bs, sample_bs, n_steps, warmup = [8, 16, 32, 64, 128, 256], [64, 256], 10, 3
        samplers = [('ddpm', 200), ('ddim', 50), ('ddim', 20), ('dpmpp_2m', 50), ('dpmpp_2m', 20)]
    if a.train_bs: train_bs = [int(b) for b in a.train_bs.split(',')]
    if a.sample_bs: sample_bs = [int(b) for b in a.sample_bs.split(',')]
    res = dict(device=torch.cuda.get_device_name(dev) if dev.type == 'cuda' else platform.processor() or 'cpu',
               torch=torch.__version__,
               config='tiny (--quick)' if a.quick else f'paper widths, {a.blocks or 36} blocks', L=L,
               cauchy_backend=cauchy_backend(dev),
               reference_h200=dict(train_s_per_step_bs8=.357, train_samples_per_s=22.4,
                                                                      ddpm200_samples_per_s_bs64=1.08))
    n_params = sum(p.numel() for p in _model(cfg, 'cpu').parameters())
    res['n_params'] = n_params

    def log(k, v):
        res[k] = v
        print(f'# {k}: {json.dumps(v)}', file=sys.stderr, flush=True)

    if not a.skip_train:
        runs = []
        for bs in train_bs:
            try: runs.append(train_speed(cfg, dev, bs, n_steps, warmup, L, compile=a.compile))
            except Exception as e:
                if _oom(e):
                    runs.append(dict(bs=bs, error='out of memory'))
                    break
                runs.append(dict(bs=bs, error=f'{type(e).__name__}: {e}'[:300]))
                traceback.print_exc()
                break
            finally:
                if dev.type == 'cuda': torch.cuda.empty_cache()
            print(f'# train {runs[-1]}', file=sys.stderr, flush=True)
        log('train', runs)
        ok = [r for r in runs if 'samples_per_s' in r]
        if ok:
            best = max(ok, key=lambda r: r['samples_per_s'])
            log('train_best',
                dict(best, **({} if a.quick else {'speedup_vs_reference': round(best['samples_per_s']/22.4, 1)})))
        if not a.no_baseline:
            import ecgdiff.s4 as s4
            mb, s4.FROZEN_MAP_MB = s4.FROZEN_MAP_MB, 0      # the reference sums the Cauchy kernels at every step
            try:
                log('train_baseline',
                    train_speed(cfg, dev, train_bs[0], max(2, n_steps//3), 1, L, precision='fp32', backend='naive'))
            except Exception as e: log('train_baseline', dict(error=f'{type(e).__name__}: {e}'[:300]))
            finally: s4.FROZEN_MAP_MB = mb
            # ecgdiff before the frozen-state map (Cauchy sums each step)
            mb, s4.FROZEN_MAP_MB = s4.FROZEN_MAP_MB, 0
            try: log('train_cauchy_each_step', train_speed(cfg, dev, train_bs[0], max(2, n_steps//3), 1, L))
            except Exception as e: log('train_cauchy_each_step', dict(error=f'{type(e).__name__}: {e}'[:300]))
            finally: s4.FROZEN_MAP_MB = mb
            if 'samples_per_s' in res.get('train_cauchy_each_step', {}) and ok:
                res['train_best']['speedup_vs_cauchy_each_step'] = round(
                    res['train_best']['samples_per_s']/res['train_cauchy_each_step']['samples_per_s'], 2)
            if 'samples_per_s' in res.get('train_baseline', {}) and ok:
                res['train_best']['speedup_vs_baseline'] = round(
                    res['train_best']['samples_per_s']/res['train_baseline']['samples_per_s'], 1)

    if not a.skip_sample:
        model = _model(cfg, dev).eval()
        log('agreement_rel_diff', agreement(model, dev, L))
        log('sync_free', sync_free(model, dev, L))
        convs = ['toeplitz', 'fft'] if a.conv == 'both' else [a.conv]
        runs = []
        for conv in convs:
            for bs in sample_bs:
                for smp, k in samplers:
                    try: r = sample_speed(model, dev, smp, k, bs, L, conv, 'auto', a.compile)
                    except Exception as e:
                        r = dict(sampler=smp, steps=k, bs=bs, conv=conv, error=f'{type(e).__name__}: {e}'[:300])
                        if not _oom(e): traceback.print_exc()
                    finally:
                        if dev.type == 'cuda': torch.cuda.empty_cache()
                    runs.append(r)
                    print(f'# sample {r}', file=sys.stderr, flush=True)
        log('sample', runs)
        ok = [r for r in runs if 'samples_per_s' in r and r['steps'] <= 50]
        if ok: log('sample_best_le50', max(ok, key=lambda r: r['samples_per_s']))
        if not a.no_baseline:
            try:
                log('sample_baseline',
                    baseline_sampling(_model(cfg, dev), dev, sample_bs[0], L, 3 if not a.quick else 2))
            except Exception as e: log('sample_baseline', dict(error=f'{type(e).__name__}: {e}'[:300]))
    print(json.dumps(res, indent=1))
    if a.out:
        with open(a.out, 'w') as f: json.dump(res, f, indent=1)


if __name__ == '__main__': main()
