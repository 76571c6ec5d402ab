"""S4 kernel and layer timings: prints one JSON object.

SSSD-ECG's S4 layer size: H=512, N=64, L=1000, bidirectional, batch 8. For every device (CPU, and CUDA when present)
and every Cauchy backend that works there: kernel generation (forward, forward+backward), the full S4Layer
forward+backward, peak memory, and the cached inference forward (eval + inference_mode: no kernel work).

    python bench/s4_kernel.py                 # CPU (and CUDA if available), a few minutes on 2 CPU cores
    python bench/s4_kernel.py --device cuda   # GPU only, more repeats
"""
import argparse, json, platform, subprocess, sys, time

import torch
from ecgdiff.s4 import S4Layer, cauchy_backends, cauchy_backend


def _sync(dev):
    if dev == 'cuda': torch.cuda.synchronize()


def _time(f, dev, repeats, warmup=1):
    "Median wall time of f() in ms (CUDA: synchronised)."
    for _ in range(warmup): f()
    _sync(dev)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        _sync(dev)
        ts.append((time.perf_counter() - t0)*1e3)
    ts.sort()
    return round(ts[len(ts)//2], 3)


_CPU_PEAK = """
import json, re, sys, torch
from ecgdiff.s4 import S4Layer
def hwm():  # peak RSS of this process image in kB (ru_maxrss would include the forking parent's peak)
    return int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))
H, N, L, bs, backend = json.loads(sys.argv[1])
lay = S4Layer(H, L, N, backend=backend); x = torch.randn(L, bs, H)
r0 = hwm()
lay(x).square().mean().backward()
print((hwm() - r0)/1024)
"""

def _peak_mb(f, dev, cfg=None):
    "Peak memory of f() above the baseline: CUDA allocator peak; CPU: peak RSS growth of a fresh process running it."
    if dev == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        f()
        torch.cuda.synchronize()
        return round((torch.cuda.max_memory_allocated() - base)/2**20, 1)
    out = subprocess.run([sys.executable, '-c', _CPU_PEAK, json.dumps(cfg)], capture_output=True, text=True)
    return round(float(out.stdout.split()[-1]), 1) if out.returncode == 0 else f'failed: {out.stderr[-200:]}'


def _saved_mb(f):
    "MB that autograd keeps for the backward while running f()."
    tot = []
    def pack(t):
        tot.append(t.numel()*t.element_size())
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t): f()
    return round(sum(tot)/2**20, 1)


def bench_device(dev, H, N, L, bs, repeats, backends):
    res = {'backends': {b: (why or 'ok') for b, why in cauchy_backends(dev).items()},
           'default_backend': cauchy_backend(dev)}
    torch.manual_seed(0)
    lay = S4Layer(H, L, N, bidirectional=True, layer_norm=True).to(dev)
    x = torch.randn(L, bs, H, device=dev)
    kern = lay.s4_layer.kernel
    for b, why in cauchy_backends(dev).items():
        if why or (backends and b not in backends): continue
        kern.kernel.backend = b
        reps = max(1, repeats//3) if b == 'naive' else repeats
        r = {}
        lay.train()
        r['kernel_fwd_ms'] = _time(lambda: kern(L), dev, reps)
        def kernel_fb(): kern(L).square().sum().backward()
        r['kernel_fwd_bwd_ms'] = _time(kernel_fb, dev, reps)
        r['kernel_saved_for_backward_mb'] = _saved_mb(lambda: kern(L))
        def layer_fb(): lay(x).square().mean().backward()
        r['layer_fwd_bwd_ms'] = _time(layer_fb, dev, reps)
        r['layer_fwd_bwd_peak_mb'] = _peak_mb(layer_fb, dev, [H, N, L, bs, b])
        if dev == 'cuda':
            def layer_fb_bf16():
                with torch.autocast('cuda', dtype=torch.bfloat16): y = lay(x)
                y.float().square().mean().backward()
            r['layer_fwd_bwd_bf16_autocast_ms'] = _time(layer_fb_bf16, dev, reps)
        lay.zero_grad(set_to_none=True)
        res[b] = r
    # cached inference: the kernel's FFT is computed once, later forwards do no kernel work
    kern.kernel.backend = None
    lay.eval()
    calls = []
    h = kern.register_forward_hook(lambda *a: calls.append(1))
    with torch.inference_mode():
        lay(x)
        n0 = len(calls)
        res['cached_inference_fwd_ms'] = _time(lambda: lay(x), dev, repeats*3)
        lay.s4_layer.clear_cache()
        res['uncached_inference_fwd_ms'] = _time(lambda: (lay.s4_layer.clear_cache(), lay(x)), dev, repeats)
        lay.s4_layer.clear_cache()
        lay(x)
        n1 = len(calls)
        lay(x)
        lay(x)
        res['kernel_calls_in_cached_forwards'] = len(calls) - n1
        if dev == 'cuda':
            with torch.autocast('cuda', dtype=torch.bfloat16):
                res['cached_inference_fwd_bf16_autocast_ms'] = _time(lambda: lay(x), dev, repeats*3)
    h.remove()
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--device', default='auto', help="'cpu', 'cuda' or 'auto' (CPU, then CUDA when available)")
    p.add_argument('--H', type=int, default=512)
    p.add_argument('--N', type=int, default=64)
    p.add_argument('--L', type=int, default=1000)
    p.add_argument('--bs', type=int, default=8)
    p.add_argument('--repeats', type=int, default=0, help='timed repeats (0: 3 on CPU, 50 on CUDA)')
    p.add_argument('--backends', default='', help='comma-separated subset of Cauchy backends (default: all that work)')
    a = p.parse_args(argv)
    devs = ['cpu', 'cuda'] if a.device == 'auto' else [a.device]
    devs = [d for d in devs if d != 'cuda' or torch.cuda.is_available()]
    out = {'config': dict(H=a.H, N=a.N, L=a.L, bs=a.bs, bidirectional=True, layer='S4Layer (SSSD-ECG block)'),
           'torch': torch.__version__, 'python': platform.python_version(), 'cpu_threads': torch.get_num_threads()}
    for d in devs:
        if d == 'cuda': out['gpu'] = torch.cuda.get_device_name()
        reps = a.repeats or (50 if d == 'cuda' else 3)
        out[d] = bench_device(d, a.H, a.N, a.L, a.bs, reps, [b for b in a.backends.split(',') if b])
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == '__main__':
    main()
