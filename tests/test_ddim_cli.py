"""The console scripts of the paired-npy conditional DDIM (ecgdiff.paired), run in this process as installed
(tests/clirun.py); `test_unknown_config_key_lists_valid` runs one in a new process."""
import subprocess, sys
from pathlib import Path
import numpy as np
import pytest
import yaml
from clirun import run_cli

ROOT = Path(__file__).resolve().parents[1]
MITDB = ROOT.parent/'shared'/'data'/'physionet'/'mitdb'/'100'
pytestmark = [pytest.mark.skipif(not MITDB.with_suffix('.hea').exists(),
                                 reason='../shared/data/physionet/mitdb/100 not present'),
              pytest.mark.usefixtures('one_thread')]   # tests/conftest.py


def run(entry, *args):
    "Run a console entry point of ecgdiff.paired as the installed script would (in this process)."
    import ecgdiff.paired
    r = run_cli(getattr(ecgdiff.paired, entry), *args,
                prog={'train_main': 'ecgdiff_train', 'infer_main': 'ecgdiff_infer',
                                                            'analyze_main': 'ecgdiff_analyze'}[entry])
    return r.returncode, r.stdout + r.stderr

def run_process(entry, *args):
    "The same entry point in a new process."
    code = f'import torch; torch.set_num_threads(1); from ecgdiff.paired import {entry}; {entry}()'
    r = subprocess.run([sys.executable, '-c', code, *map(str, args)], capture_output=True, text=True, timeout=600)
    return r.returncode, r.stdout + r.stderr

def tiny_config(tmp, out='run', **over):
    c = {'data': dict(path=str(tmp/'ds'), source=str(MITDB), duration_s=120, zone_s=60),
         'model': dict(base_channels=8, channel_mults=[1, 2], n_res=1, cond_channels=8, cond_dim=16, n_heads=2),
         'train': dict(out_dir=str(tmp/out), epochs=1, bs=32, lr=1e-3, precision='fp32'),
         'sample': dict(num_steps=3)}
    for k, v in over.items(): c[k].update(v)
    f = tmp/f'{out}.yaml'
    f.write_text(yaml.safe_dump(c))
    return f

@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    "A dataset built by ecgdiff_train itself (from two minutes of MIT-BIH 100) and a one-epoch run"
    tmp = tmp_path_factory.mktemp('paired')
    rc, out = run('train_main', '--config', tiny_config(tmp), '--quiet')
    assert rc == 0, out
    return tmp

def test_train_builds_data_and_checkpoints(trained):
    assert (trained/'ds'/'meta.json').exists()
    assert (trained/'run'/'latest.pth').exists() and (trained/'run'/'best.pth').exists()
    assert not list(trained.rglob('*.tmp'))

def test_resume_continues(trained):
    import torch
    cfg = tiny_config(trained, out='run', train=dict(epochs=2))
    rc, out = run('train_main', '--config', cfg, '--resume', trained/'run'/'latest.pth', '--quiet')
    assert rc == 0, out
    assert torch.load(trained/'run'/'latest.pth', weights_only=True)['epoch'] == 1

def test_resume_incompatible_names_keys(trained):
    cfg = tiny_config(trained, out='other', model=dict(base_channels=16, cond_dim=8))
    rc, out = run('train_main', '--config', cfg, '--resume', trained/'run'/'latest.pth')
    assert rc != 0
    assert 'model.base_channels: 8 in checkpoint' in out and 'model.cond_dim: 16 in checkpoint' in out, out

def test_unknown_config_key_lists_valid(tmp_path):
    f = tmp_path/'bad.yaml'
    f.write_text(yaml.safe_dump({'train': {'epoch': 3}}))
    rc, out = run_process('train_main', '--config', f)
    assert rc != 0 and "unknown key(s) ['train.epoch']" in out and "'epochs'" in out, out

def test_infer_writes_arrays_pngs_and_comparison(trained):
    out_dir = trained/'gen'
    rc, out = run('infer_main', '--checkpoint', trained/'run'/'best.pth', '--num-samples', 2, '--num-steps', 3,
                  '--eta', 0.5, '--visualize', '--compare', '--output-dir', out_dir, '--device', 'cpu')
    assert rc == 0, out
    names = sorted(p.stem for p in (trained/'ds'/'images'/'val').glob('*.npy'))[:2]
    for n in names:
        a = np.load(out_dir/f'{n}_images.npy')
        b = np.load(out_dir/f'{n}_freq_embeddings.npy')
        assert a.shape == (32, 32) and b.shape == (32,) and a.dtype == np.float32 and np.isfinite(a).all()
        assert (out_dir/f'{n}.png').stat().st_size > 1000
    import pandas as pd
    df = pd.read_csv(out_dir/'compare.csv')
    assert list(df.name) == names and {'mse_images', 'corr_images', 'mse_freq', 'corr_freq'} <= set(df.columns)
    check_comparison(df, names, out_dir, trained/'ds'/'images'/'val', trained/'ds'/'freq_embeddings'/'val')
    check_printed(df, out)

def check_comparison(df, names, out_dir, img_dir, freq_dir):
    "compare.csv's per-sample MSE and Pearson correlation, recomputed with numpy from the written arrays and the truth"
    for i, n in enumerate(names):
        for kind, col, truth_dir in (('images', 'images', img_dir), ('freq_embeddings', 'freq', freq_dir)):
            gen = np.load(out_dir/f'{n}_{kind}.npy').astype(np.float64).ravel()
            truth = np.load(truth_dir/f'{n}.npy').astype(np.float64).ravel()
            assert abs(df[f'mse_{col}'][i] - ((gen - truth)**2).mean()) < 1e-5, (n, kind)
            # the written arrays are float32 roundings of what was compared: the correlation agrees to ~1e-7
            assert abs(df[f'corr_{col}'][i] - np.corrcoef(gen, truth)[0, 1]) < 1e-5, (n, kind)

def check_printed(df, out):
    "The table ecgdiff_infer --compare prints (4 decimals) and its mean line agree with compare.csv"
    rows = {l.split()[0]: [float(v) for v in l.split()[1:]]
            for l in out.splitlines() if l.split() and l.split()[0] in set(df.name)}
    assert list(rows) == list(df.name), out
    for i, n in enumerate(df.name):
        assert np.allclose(rows[n], df.loc[i, ['mse_images', 'corr_images', 'mse_freq', 'corr_freq']].to_numpy(float),
                           atol=5.1e-5), (n, out)
    assert f'corr images {df.corr_images.mean():.3f}, freq {df.corr_freq.mean():.3f}' in out, out

def test_infer_compare_with_input_dir(trained, tmp_path):
    """--compare with --input-dir: conditions and ground truth from the folder (renamed, so the val split cannot stand
    in)"""
    import pandas as pd
    val = sorted(p.stem for p in (trained/'ds'/'images'/'val').glob('*.npy'))
    picked = {f'sample_{j}': val[i] for j, i in enumerate((5, 40, 77))}
    for kind, sub in (('amp_init', 'inits/amp_init'), ('emb_init', 'inits/emb_init'), ('images', 'images'),
                      ('freq_embeddings', 'freq_embeddings')):
        (tmp_path/'in'/kind).mkdir(parents=True)
        for new, old in picked.items():
            (tmp_path/'in'/kind/f'{new}.npy').write_bytes((trained/'ds'/sub/'val'/f'{old}.npy').read_bytes())
    out_dir = tmp_path/'o'
    rc, out = run('infer_main', '--checkpoint', trained/'run'/'best.pth', '--num-samples', 3, '--num-steps', 3,
                  '--compare', '--input-dir', tmp_path/'in', '--output-dir', out_dir, '--device', 'cpu')
    assert rc == 0, out
    df = pd.read_csv(out_dir/'compare.csv')
    assert list(df.name) == list(picked), df
    check_comparison(df, list(picked), out_dir, tmp_path/'in'/'images', tmp_path/'in'/'freq_embeddings')
    check_printed(df, out)
    assert df[['corr_images', 'corr_freq']].notna().all().all() and (df.corr_images.abs() <= 1).all()

def test_infer_input_dir_unpaired_listed(trained, tmp_path):
    import shutil
    for k in ('amp_init', 'emb_init'): shutil.copytree(trained/'ds'/'inits'/k/'val', tmp_path/'in'/k)
    victim = sorted((tmp_path/'in'/'emb_init').glob('*.npy'))[0]
    victim.unlink()
    rc, out = run('infer_main', '--checkpoint', trained/'run'/'best.pth', '--input_dir', tmp_path/'in',
                  '--output-dir', tmp_path/'o', '--device', 'cpu')
    assert rc != 0 and f'unpaired: amp_init/{victim.name} has no partner in emb_init' in out, out
    assert not (tmp_path/'o').exists()

def test_analyze(trained):
    name = sorted(p.stem for p in (trained/'ds'/'images'/'train').glob('*.npy'))[0]
    rc, out = run('analyze_main', '--file-name', name, '--dataset-path', trained/'ds', '--out', trained/'a.png')
    assert rc == 0, out
    assert 'consistency:' in out and '0 problem(s)' in out and (trained/'a.png').exists()

def test_nan_stops_with_message(trained):
    cfg = tiny_config(trained, out='nan', train=dict(lr=1e6, epochs=3))
    rc, out = run('train_main', '--config', cfg, '--quiet')
    assert rc != 0 and 'non-finite training loss' in out, out

def test_nan_after_good_epochs_keeps_checkpoint(trained, tmp_path):
    "A resumed run that diverges stops with a message naming the last good checkpoint, which is left as it was"
    import shutil, torch
    run_dir = tmp_path/'nanrun'
    run_dir.mkdir()
    latest = run_dir/'latest.pth'
    shutil.copy(trained/'run'/'latest.pth', latest)
    before = latest.read_bytes()
    epoch = torch.load(latest, weights_only=True)['epoch']
    cfg = tiny_config(tmp_path, out='nanrun', data=dict(path=str(trained/'ds')), train=dict(lr=1e6, epochs=epoch + 3))
    rc, out = run('train_main', '--config', cfg, '--resume', latest, '--quiet')
    assert rc != 0, out
    assert 'non-finite training loss' in out and f'at epoch {epoch + 1}, batch' in out, out
    assert f'the last good checkpoint is {latest}' in out, out
    assert latest.read_bytes() == before
    assert not (tmp_path/'ds').exists()
    from ecgdiff.paired import load_paired
    model = load_paired(latest, device='cpu')[0]
    assert all(torch.isfinite(p).all() for p in model.parameters())
