"The `ecgdiff_augment` console script, step by step and as a pipeline, on a tiny simulated corpus (CPU, about a minute)."
import json, os, shutil, subprocess, sys, tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from ecgdiff.data import load_ptbxl, task_labels, write_ptbxl

BIN = Path(sys.executable).parent
ENV = os.environ | {'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}   # the CI's 2 cores are shared
LABELS = task_labels('superdiagnostic')
TINY = ['--arch', 'resnet1d_tiny', '--epochs', '4', '--bs', '32', '--n_boot', '200', '--device', 'cpu', '--quiet']

LAUNCHER = Path(tempfile.mkdtemp())/'ecgdiff_augment'     # what pip writes for a console script, until it is registered
LAUNCHER.write_text('import sys\nfrom ecgdiff.augment import augment_cli\nif __name__ == "__main__": sys.exit(augment_cli())\n')

def cli(*args, check=True):
    "Run `ecgdiff_augment ARGS`: the installed console script, or the same entry point through a launcher file."
    exe = BIN/'ecgdiff_augment'
    cmd = [str(exe)] if exe.exists() else [sys.executable, str(LAUNCHER)]
    r = subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, timeout=600, env=ENV)
    if check: assert r.returncode == 0, f"{args[0]} failed:\n{r.stderr[-3000:]}"
    return r

def tiny_gan(file, labels, task):
    "An untrained tiny WaveGAN* saved as a generator checkpoint for `labels`."
    from ecgdiff.augment import save_generator
    from ecgdiff.gans import CondWaveGANGenerator
    torch.manual_seed(0)
    G = CondWaveGANGenerator(model_size=10, num_classes=len(labels))
    return save_generator(file, G, 'gan', labels, dict(arch='wavegan', model_size=10, scale=3.), fs=100, task=task)

@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    return write_ptbxl(tmp_path_factory.mktemp('data')/'ptbxl', n_records=200, rates=(100,), progress=False)

@pytest.fixture(scope='module')
def baseline(corpus, tmp_path_factory):
    "A study folder after `combine`, `train` and `test`."
    out = tmp_path_factory.mktemp('study')/'s'
    cli('combine', '--out', out, '--data', corpus, '--task', 'superdiagnostic', '--quiet')
    cli('train', '--out', out, *TINY)
    cli('test', '--out', out, '--n_boot', '200', '--device', 'cpu')
    return out

def copy_study(src, dst):
    shutil.copytree(src, dst); return dst

def test_help():
    r = cli('--help')
    assert 'usage' in r.stdout.lower()
    for opt in ('--out', '--data', '--label', '--checkpoint', '--arch', '--n_boot'): assert opt in r.stdout

def test_unknown_step(tmp_path):
    r = cli('trian', '--out', tmp_path, check=False)
    assert r.returncode != 0 and "unknown step 'trian'" in r.stderr and 'combine-with-provenance' in r.stderr

def test_combine_splits(baseline, corpus):
    sp = pd.read_csv(baseline/'splits.csv')
    db = pd.read_csv(corpus/'ptbxl_database.csv', index_col='ecg_id')    # the folds, read independently
    folds = db.strat_fold[sp.ecg_id].values
    assert (sp.strat_fold.values == folds).all()
    assert set(sp.split[folds == 10]) == {'test'} and set(sp.split[folds == 9]) == {'valid'}
    assert set(sp.split[folds <= 8]) == {'train'} and (sp.provenance == 'real').all()
    assert json.loads((baseline/'study.json').read_text())['labels'] == LABELS

def test_test_report(baseline):
    s = json.loads((baseline/'baseline/report/summary.json').read_text())
    p = np.load(baseline/'baseline/preds.npz')
    y, pt = p['y_test'], p['p_test']
    aucs = [roc_auc_score(y[:, j], pt[:, j]) for j in range(y.shape[1]) if 0 < y[:, j].sum() < len(y)]
    assert abs(s['macro_auc'] - np.mean(aucs)) < 1e-9
    lo, hi = s['macro_auc_ci']
    assert lo <= s['macro_auc'] <= hi and 'validation' in s['threshold_source']
    per = pd.read_csv(baseline/'baseline/report/per_label.csv', index_col='label')
    assert list(per.index) == LABELS + ['macro']
    for c in ('auc', 'auc_lo', 'auc_hi', 'threshold', 'f1', 'precision', 'recall', 'specificity'): assert c in per
    assert (baseline/'baseline/report/report.png').stat().st_size > 0
    assert not list(baseline.rglob('*.tmp*'))

def test_unknown_label_lists_valid_ones(baseline):
    r = cli('labels', '--out', baseline, '--label', 'AFIB', check=False)
    assert r.returncode != 0
    assert "unknown label 'AFIB'" in r.stderr and 'CD, HYP, MI, NORM, STTC' in r.stderr

def test_missing_option(baseline):
    r = cli('generate', '--out', baseline, check=False)
    assert r.returncode != 0 and '--checkpoint is required' in r.stderr

def test_generator_with_other_label_set_refused(baseline, tmp_path):
    out = copy_study(baseline, tmp_path/'s')
    cli('labels', '--out', out, '--label', 'MI', '--n', '8')
    ck = tiny_gan(tmp_path/'rhythm.pth', task_labels('rhythm'), 'rhythm')
    r = cli('generate', '--out', out, '--checkpoint', ck, '--device', 'cpu', check=False)
    assert r.returncode != 0 and 'LabelSetError' in r.stderr
    assert 'AFIB, AFLT, BIGU' in r.stderr and 'CD, HYP, MI, NORM, STTC' in r.stderr     # both label sets named
    assert not (out/'synthetic').exists()

def test_augmentation_steps(baseline, tmp_path):
    out = copy_study(baseline, tmp_path/'s')
    cli('labels', '--out', out, '--label', 'MI', '--n', '30', '--seed', '1')
    V = pd.read_csv(out/'labels.csv')
    assert list(V.columns) == LABELS and len(V) == 30 and (V.MI == 1).all()
    ck = tiny_gan(tmp_path/'gan.pth', LABELS[::-1], 'superdiagnostic')     # same labels, another order: mapped
    cli('generate', '--out', out, '--checkpoint', ck, '--device', 'cpu', '--quiet')
    X = np.load(out/'synthetic/signals.npy')
    assert X.shape == (30, 12, 1000) and np.isfinite(X).all()
    rec = pd.read_csv(out/'synthetic/records.csv')
    assert (rec.kind == 'gan').all() and rec.sha1.nunique() == 1 and (rec[LABELS].values == V.values).all()
    cli('combine-with-provenance', '--out', out)
    aug = pd.read_csv(out/'augmented/splits.csv')
    syn = aug[aug.provenance == 'synthetic']
    assert len(syn) == 30 and set(syn.split) == {'train'} and syn.strat_fold.isin(range(1, 9)).all()
    assert len(aug) - len(syn) == len(pd.read_csv(out/'splits.csv'))
    cli('retrain', '--out', out, *TINY)
    info = torch.load(out/'augmented/model.pth', weights_only=True)
    assert info['n_train_synthetic'] == 30
    cli('test', '--out', out, '--name', 'augmented', '--n_boot', '200', '--device', 'cpu')
    r = cli('compare', '--out', out, '--n_boot', '200')
    cmp = pd.read_csv(out/'compare/compare.csv')
    assert set(cmp.label) == set(LABELS) | {'macro'} and set(cmp.metric) == {'auc', 'f1'}
    pa, pb = np.load(out/'baseline/preds.npz'), np.load(out/'augmented/preds.npz')
    assert list(pa['ids_test']) == list(pb['ids_test'])                          # paired: the same real test records
    j = LABELS.index('MI'); row = cmp[(cmp.label == 'MI') & (cmp.metric == 'auc')].iloc[0]
    d = roc_auc_score(pa['y_test'][:, j], pb['p_test'][:, j]) - roc_auc_score(pa['y_test'][:, j], pa['p_test'][:, j])
    assert abs(row.delta - d) < 1e-9 and row.lo <= row.delta <= row.hi
    assert json.loads(r.stdout)['result']['target'] == 'MI'
    assert (out/'compare/compare.png').exists() and not list(out.rglob('*.tmp*'))

def test_synthetic_in_test_fold_refused(baseline, tmp_path):
    out = copy_study(baseline, tmp_path/'s')
    cli('labels', '--out', out, '--label', 'CD', '--n', '5')
    cli('generate', '--out', out, '--checkpoint', tiny_gan(tmp_path/'gan.pth', LABELS, 'superdiagnostic'), '--device', 'cpu', '--quiet')
    cli('combine-with-provenance', '--out', out)
    f = out/'augmented/splits.csv'
    aug = pd.read_csv(f, dtype={'record': str})
    i = aug.index[aug.provenance == 'synthetic'][0]
    aug.loc[i, ['strat_fold', 'split']] = [10, 'test']                       # a hand-edited splits file
    aug.to_csv(f, index=False)
    r = cli('retrain', '--out', out, *TINY, check=False)
    assert r.returncode != 0 and 'SyntheticInTestError' in r.stderr and 'real records only' in r.stderr
    assert not (out/'augmented/model.pth').exists()

def test_pipeline(corpus, tmp_path):
    out = tmp_path/'p'
    r = cli('pipeline', '--out', out, '--data', corpus, '--label', 'HYP', '--gan_epochs', '1', *TINY)
    s = json.loads((out/'pipeline.json').read_text())
    assert s['label'] == 'HYP' and s['baseline']['n_test'] == s['augmented']['n_test']
    n_hyp = load_ptbxl(corpus, 'superdiagnostic', progress=False)
    n_hyp = int(n_hyp.Y[n_hyp.folds <= 8, LABELS.index('HYP')].sum())
    assert s['augmented']['n_train_synthetic'] == n_hyp                    # default n: the label's real training count
    assert set(pd.read_csv(out/'compare/compare.csv').label) == set(LABELS) | {'macro'}
    assert (out/'generator/gan.pth').exists() and json.loads(r.stdout)['step'] == 'pipeline'

def test_pipeline_rejects_bad_label_before_training(corpus, tmp_path):
    r = cli('pipeline', '--out', tmp_path/'p', '--data', corpus, '--label', 'MII', *TINY, check=False)
    assert r.returncode != 0 and "unknown label 'MII'" in r.stderr and 'CD, HYP, MI, NORM, STTC' in r.stderr
    assert not (tmp_path/'p'/'baseline').exists()

def test_generate_with_sssd_model(baseline, tmp_path):
    "An `ecgdiff.sssd` model file works as a generator; one of another label set is refused (skipped without ecgdiff.sssd)."
    sssd = pytest.importorskip('ecgdiff.sssd')
    from ecgdiff.gans import to_12_leads
    out = copy_study(baseline, tmp_path/'s')
    cli('labels', '--out', out, '--label', 'STTC', '--n', '3')
    torch.manual_seed(0)
    m = sssd.build_model('sssd', 'tiny', labels='superdiagnostic')
    m.diffusion = dict(betas=None, pred='eps', scale=2.)                          # trained on mV * 2
    sssd.save_sssd(m, tmp_path/'run/model.pth')
    (tmp_path/'run/config.json').write_text(json.dumps(dict(fs=100)))            # as `ecgdiff_sssd_train` writes it
    cli('generate', '--out', out, '--checkpoint', tmp_path/'run/model.pth', '--sampler', 'ddim', '--steps', '2',
        '--device', 'cpu', '--quiet')
    V = pd.read_csv(out/'labels.csv').to_numpy(np.float32)
    ref = to_12_leads(sssd.sample_sssd(m, V, sampler='ddim', n_steps=2, seed=0, bs=3, device='cpu', progress=False).numpy())/2
    np.testing.assert_allclose(np.load(out/'synthetic/signals.npy'), ref, atol=1e-4)
    assert set(pd.read_csv(out/'synthetic/records.csv').kind) == {'sssd'}
    r = sssd.build_model('dsat', 'tiny', labels='rhythm')
    sssd.save_sssd(r, tmp_path/'rhythm.pth')
    res = cli('generate', '--out', out, '--checkpoint', tmp_path/'rhythm.pth', '--device', 'cpu', check=False)
    assert res.returncode != 0 and 'AFIB, AFLT' in res.stderr and 'CD, HYP, MI, NORM, STTC' in res.stderr
