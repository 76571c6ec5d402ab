"""The `ecgdiff_augment` console script, step by step and as a pipeline, on a tiny simulated corpus (CPU, about a
minute), on the embedded default (no --data, no --arch), and on a mini corpus in PTB-XL's own layout built from the real
rows and the real record in ../shared (skipped when ../shared is absent)."""
import ast, json, os, shutil, subprocess, sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from ecgdiff.augment import augment_cli
from ecgdiff.data import LEADS, load_ptbxl, task_labels, to_12_leads, write_ptbxl
from clirun import run_cli

BIN = Path(sys.executable).parent
LABELS = task_labels('superdiagnostic')
TINY = ['--arch', 'resnet1d_tiny', '--epochs', '4', '--bs', '32', '--n_boot', '200', '--device', 'cpu', '--quiet']

SHARED = Path(__file__).resolve().parents[2]/'shared'/'data'/'physionet'    # ../shared from the repository

pytestmark = pytest.mark.usefixtures('one_thread')   # tests/conftest.py

def cli(*args, check=True):
    "Run `ecgdiff_augment ARGS` in this process (tests/clirun.py; `test_installed_script` runs the installed one)."
    r = run_cli(augment_cli, *args, prog='ecgdiff_augment')
    if check: assert r.returncode == 0, f"{args[0]} failed:\n{r.stderr[-3000:]}"
    return r

def tiny_gan(file, labels, task):
    "An untrained tiny WaveGAN* saved as a generator checkpoint for `labels`."
    from ecgdiff.augment import save_generator
    from ecgdiff.gans import CondWaveGANGenerator
    torch.manual_seed(0)
    G = CondWaveGANGenerator(model_size=10, num_classes=len(labels))
    return save_generator(file, G, 'gan', labels, dict(arch='wavegan', model_size=10, scale=3.), fs=100, task=task,
                          trained_on=[])                     # untrained: it has seen no record

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
    shutil.copytree(src, dst)
    return dst

def test_installed_script(tmp_path):
    "The installed console script, as a new process: --help, and an unknown step fails with the list of steps."
    env = os.environ | {'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}
    r = subprocess.run([str(BIN/'ecgdiff_augment'), '--help'], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0 and 'usage' in r.stdout.lower()
    r = subprocess.run([str(BIN/'ecgdiff_augment'), 'trian', '--out', str(tmp_path)], capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode != 0 and "unknown step 'trian'" in r.stderr and 'Traceback' not in r.stderr

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
    j = LABELS.index('MI')
    row = cmp[(cmp.label == 'MI') & (cmp.metric == 'auc')].iloc[0]
    d = roc_auc_score(pa['y_test'][:, j], pb['p_test'][:, j]) - roc_auc_score(pa['y_test'][:, j], pa['p_test'][:, j])
    assert abs(row.delta - d) < 1e-9 and row.lo <= row.delta <= row.hi
    assert json.loads(r.stdout)['result']['target'] == 'MI'
    assert (out/'compare/compare.png').exists() and not list(out.rglob('*.tmp*'))

def test_synthetic_in_test_fold_refused(baseline, tmp_path):
    out = copy_study(baseline, tmp_path/'s')
    cli('labels', '--out', out, '--label', 'CD', '--n', '5')
    cli('generate', '--out', out, '--checkpoint', tiny_gan(tmp_path/'gan.pth', LABELS, 'superdiagnostic'), '--device',
        'cpu', '--quiet')
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
    """An `ecgdiff.sssd` model file works as a generator; one of another label set is refused (skipped without
    ecgdiff.sssd)."""
    sssd = pytest.importorskip('ecgdiff.sssd')
    out = copy_study(baseline, tmp_path/'s')
    cli('labels', '--out', out, '--label', 'STTC', '--n', '3')
    torch.manual_seed(0)
    m = sssd.build_model('sssd', 'tiny', labels='superdiagnostic')
    m.diffusion = dict(betas=None, pred='eps', scale=2.)                          # trained on mV * 2
    sssd.save_sssd(m, tmp_path/'run/model.pth')
    (tmp_path/'run/config.json').write_text(json.dumps(dict(fs=100)))            # as `ecgdiff_sssd_train` writes it
    res = cli('generate', '--out', out, '--checkpoint', tmp_path/'run/model.pth', '--device', 'cpu', check=False)
    assert res.returncode != 0 and 'does not record its training data' in res.stderr    # no card: refused
    m.card = dict(trained_on=[])                                                  # untrained: it has seen no record
    sssd.save_sssd(m, tmp_path/'run/model.pth')
    cli('generate', '--out', out, '--checkpoint', tmp_path/'run/model.pth', '--sampler', 'ddim', '--steps', '2',
        '--device', 'cpu', '--quiet')
    V = pd.read_csv(out/'labels.csv').to_numpy(np.float32)
    ref = to_12_leads(sssd.sample_sssd(m, V, sampler='ddim', n_steps=2, seed=0, bs=3, device='cpu',
                                       progress=False).numpy())/2
    np.testing.assert_allclose(np.load(out/'synthetic/signals.npy'), ref, atol=1e-4)
    assert set(pd.read_csv(out/'synthetic/records.csv').kind) == {'sssd'}
    r = sssd.build_model('dsat', 'tiny', labels='rhythm')
    sssd.save_sssd(r, tmp_path/'rhythm.pth')
    res = cli('generate', '--out', out, '--checkpoint', tmp_path/'rhythm.pth', '--device', 'cpu', check=False)
    assert res.returncode != 0 and 'AFIB, AFLT' in res.stderr and 'CD, HYP, MI, NORM, STTC' in res.stderr


def test_pipeline_embedded_default(tmp_path):
    """No --data and no --arch: the simulated corpus is written into OUT/ptbxl, and 'auto' picks the small ResNet on the
    CPU."""
    out = tmp_path/'p'
    r = cli('pipeline', '--out', out, '--n_records', '200', '--epochs', '2', '--bs', '32', '--gan_epochs', '1',
            '--n_boot', '100', '--device', 'cpu', '--quiet')
    assert "arch 'auto' on cpu: using resnet1d_tiny" in r.stderr and '--arch resnet1d50' in r.stderr   # the note
    db = pd.read_csv(out/'ptbxl/ptbxl_database.csv')                  # the embedded default corpus, n_records of it
    assert len(db) == 200 and (out/'ptbxl'/(db.filename_lr[0] + '.dat')).is_file()
    s = json.loads((out/'pipeline.json').read_text())
    assert (s['arch'], s['arch_requested']) == ('resnet1d_tiny', 'auto') and Path(s['data']) == out/'ptbxl'
    from ecgdiff.augment import build_classifier
    n_tiny = sum(p.numel() for p in build_classifier('resnet1d_tiny').parameters())
    for m in ('baseline', 'augmented'):                              # both trainings used the small ResNet
        sd = torch.load(out/m/'model.pth', weights_only=True)['model']
        buffers = ('running_mean', 'running_var', 'num_batches_tracked')
        assert sum(v.numel() for k, v in sd.items() if not k.endswith(buffers)) == n_tiny
    cmp = pd.read_csv(out/'compare/compare.csv')
    assert set(cmp.label) == set(LABELS) | {'macro'} and set(cmp.metric) == {'auc', 'f1'}


# --- a mini PTB-XL in the layout of a real download, from the real rows and the real record in ../shared ---

def _superclasses(scp_codes, scp):
    "PTB-XL's superdiagnostic classes of a record, read from the real scp_statements.csv (independently of ecgdiff)."
    dia = scp.diagnostic_class[scp.diagnostic == 1]
    return sorted({dia[c] for c in ast.literal_eval(scp_codes) if c in dia.index})

@pytest.fixture(scope='module')
def real_corpus(tmp_path_factory):
    "Real rows of ptbxl_database_subset.csv (one single-class record per class and fold), each with a copy of 00001_lr."
    meta, rec = SHARED/'ptbxl-meta', SHARED/'ptbxl'/'records100'/'00000'/'00001_lr'
    if not SHARED.exists(): pytest.skip('../shared/data/physionet not present')
    db = pd.read_csv(meta/'ptbxl_database_subset.csv', index_col='ecg_id').sort_index()
    scp = pd.read_csv(meta/'scp_statements.csv', index_col=0)
    sup = db.scp_codes.map(lambda s: _superclasses(s, scp))
    one = sup[sup.map(len) == 1].map(lambda l: l[0])
    # every class in every fold: train, valid and test
    ids = one.groupby([db.strat_fold[one.index], one]).head(1).index
    rows = db.loc[sorted(ids)]
    root = tmp_path_factory.mktemp('real')/'ptbxl'
    root.mkdir()
    rows.to_csv(root/'ptbxl_database.csv')
    shutil.copy(meta/'scp_statements.csv', root)
    hea, dat = rec.with_suffix('.hea').read_text(), rec.with_suffix('.dat').read_bytes()
    for fn in rows.filename_lr:                        # the shared data hold the 100 Hz record only (no records500/)
        dst = root/fn
        dst.parent.mkdir(parents=True, exist_ok=True)
        (dst.parent/(dst.name + '.dat')).write_bytes(dat)
        (dst.parent/(dst.name + '.hea')).write_text(hea.replace(rec.name, dst.name))   # a header names its own record
    return root, rows, sup[rows.index]

def test_real_ptbxl_layout(real_corpus, tmp_path):
    "combine, train, test and labels on real PTB-XL rows and a real record, unchanged from a download's layout."
    import wfdb
    root, rows, sup = real_corpus
    assert set(sup.map(tuple)) == {(l,) for l in LABELS} and len(rows) == 50
    out = tmp_path/'s'
    cli('combine', '--out', out, '--data', root, '--task', 'superdiagnostic', '--quiet')
    cli('train', '--out', out, '--arch', 'resnet1d_tiny', '--epochs', '1', '--bs', '16', '--device', 'cpu', '--quiet')
    cli('test', '--out', out, '--n_boot', '50', '--device', 'cpu')
    cli('labels', '--out', out, '--label', 'MI', '--n', '12', '--seed', '3')

    sp = pd.read_csv(out/'splits.csv')                                 # combine: the real ecg_ids and folds
    assert sorted(sp.ecg_id) == sorted(rows.index) and (sp.provenance == 'real').all()
    assert (sp.strat_fold.values == rows.strat_fold[sp.ecg_id].values).all()
    want = {'train': range(1, 9), 'valid': [9], 'test': [10]}
    assert all(sp.strat_fold[sp.split == k].isin(v).all() for k, v in want.items())
    counts = pd.read_csv(out/'report/data_summary.csv', index_col='label')
    for k, v in want.items():                                          # label counts from the real scp_statements.csv
        ref = pd.Series([l for ls in sup[rows.strat_fold.isin(v)] for l in ls]).value_counts()
        assert counts[k].drop('records').to_dict() == {l: int(ref.get(l, 0)) for l in LABELS}

    info = torch.load(out/'baseline/model.pth', weights_only=True)     # train: standardised with the real signal
    r = wfdb.rdrecord(str(SHARED/'ptbxl'/'records100'/'00000'/'00001_lr'))
    x = r.p_signal[:, [[n.upper() for n in r.sig_name].index(l.upper()) for l in LEADS]].T
    np.testing.assert_allclose(info['mean'].numpy().ravel(), x.mean(1), atol=1e-4)
    np.testing.assert_allclose(info['std'].numpy().ravel(), x.std(1), rtol=1e-3)
    assert info['arch'] == 'resnet1d_tiny' and info['n_train_real'] == 40 and (out/'baseline/history.csv').is_file()

    s = json.loads((out/'baseline/report/summary.json').read_text())  # test: the real test fold, every class present
    p = np.load(out/'baseline/preds.npz')
    assert s['n_test'] == 5 and set(p['ids_test'].astype(int)) == set(rows.index[rows.strat_fold == 10])
    assert (p['y_test'].sum(0) == 1).all() and (p['y_valid'].sum(0) == 1).all()
    aucs = [roc_auc_score(p['y_test'][:, j], p['p_test'][:, j]) for j in range(len(LABELS))]
    assert abs(s['macro_auc'] - np.mean(aucs)) < 1e-9
    per = pd.read_csv(out/'baseline/report/per_label.csv', index_col='label')
    assert list(per.index) == LABELS + ['macro'] and (out/'baseline/report/report.png').stat().st_size > 0

    V = pd.read_csv(out/'labels.csv')                                  # labels: MI's co-occurrence in the real rows
    assert list(V.columns) == LABELS and len(V) == 12
    # the training MI records are MI only
    assert (V.values == np.eye(len(LABELS), dtype=int)[LABELS.index('MI')]).all()
    assert not list(out.rglob('*.tmp*'))

# --- the real layout of ../shared/data/ptbxl-fold10: 1803 real PTB-XL records, folds 1-8 train, 9 valid, 10 test ---
FOLD10 = SHARED.parent/'ptbxl-fold10'

def test_real_fold10_provenance_guard(tmp_path):
    """On real PTB-XL: the test fold holds its real records only; no generator that saw a held-out record, no synthetic
    test record."""
    from ecgdiff.augment import save_generator
    from ecgdiff.data import trained_on
    from ecgdiff.gans import CondWaveGANGenerator
    if not (FOLD10/'ptbxl_database.csv').is_file(): pytest.skip('../shared/data/ptbxl-fold10 not present')
    db = pd.read_csv(FOLD10/'ptbxl_database.csv', index_col='ecg_id')               # the folds, read independently
    out = tmp_path/'s'
    cli('combine', '--out', out, '--data', FOLD10, '--task', 'rhythm', '--quiet')
    sp = pd.read_csv(out/'splits.csv')
    assert (sp.provenance == 'real').all()
    test_ids = set(sp.ecg_id[sp.split == 'test'])
    assert test_ids == set(db.index[db.strat_fold == 10]) & set(sp.ecg_id) and len(test_ids) > 150
    cli('labels', '--out', out, '--label', 'SBRAD', '--n', '4')
    labels = task_labels('rhythm')
    G = CondWaveGANGenerator(model_size=5, num_classes=len(labels))
    cfg = dict(arch='wavegan', model_size=5, scale=3.)
    leak = sorted(test_ids)[:1]                                                     # one real test record seen
    save_generator(tmp_path/'leak.pth', G, 'gan', labels, cfg, task='rhythm', trained_on=[trained_on(FOLD10, leak)])
    r = cli('generate', '--out', out, '--checkpoint', tmp_path/'leak.pth', '--device', 'cpu', '--quiet', check=False)
    assert r.returncode != 0 and 'TrainedOnTestError' in r.stderr and f'ecg_ids {leak}' in r.stderr
    assert not (out/'synthetic').exists()
    train_ids = sp.ecg_id[sp.split == 'train']
    save_generator(tmp_path/'ok.pth', G, 'gan', labels, cfg, task='rhythm', trained_on=[trained_on(FOLD10, train_ids)])
    cli('generate', '--out', out, '--checkpoint', tmp_path/'ok.pth', '--device', 'cpu', '--quiet')
    cli('combine-with-provenance', '--out', out)
    aug = pd.read_csv(out/'augmented/splits.csv', dtype={'record': str})
    assert set(aug.ecg_id[aug.split == 'test'].astype(int)) == test_ids                 # the test fold untouched
    assert set(aug.strat_fold[aug.provenance == 'synthetic']) == {1}
    i = aug.index[aug.provenance == 'synthetic'][0]
    # a synthetic record put in fold 10
    aug.loc[i, ['strat_fold', 'split']] = [10, 'test']
    aug.to_csv(out/'augmented/splits.csv', index=False)
    r = cli('retrain', '--out', out, *TINY, check=False)
    assert r.returncode != 0 and 'SyntheticInTestError' in r.stderr and 'real records only' in r.stderr
    assert not (out/'augmented/model.pth').exists()

def test_train_on_random_crops(baseline, tmp_path):
    "`--crop`: the classifier trains on windows (recorded in its card) and still predicts whole records."
    out = copy_study(baseline, tmp_path/'s')
    cli('train', '--out', out, '--name', 'crop', '--crop', '250', *TINY)
    info = json.loads((out/'crop/train.json').read_text())
    assert info['crop'] == 250 and json.loads((out/'baseline/train.json').read_text())['crop'] is None
    cli('test', '--out', out, '--name', 'crop', '--n_boot', '50', '--device', 'cpu')
    p, b = np.load(out/'crop/preds.npz'), np.load(out/'baseline/preds.npz')
    assert p['p_test'].shape == b['p_test'].shape and np.isfinite(p['p_test']).all()
    assert not np.allclose(p['p_test'], b['p_test'])              # another model, trained on other inputs
