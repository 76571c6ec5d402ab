"""Property-based tests (hypothesis): the loaders meet random malformed input with the library's own errors, never a
crash."""
import os, shutil, tempfile
from pathlib import Path
import numpy as np, pandas as pd, pytest
from hypothesis import given, settings, HealthCheck, strategies as st
from ecgdiff.data import ECGDataError, load_ptbxl, parse_scp_codes, read_record, write_ptbxl, write_wfdb

SETTINGS = settings(max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", 60)), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    return write_ptbxl(tmp_path_factory.mktemp('c')/'ptbxl', n_records=12, seed=0, rates=(100,), progress=False)

@pytest.fixture(scope='module')
def record(tmp_path_factory):
    p = tmp_path_factory.mktemp('r')/'rec'
    write_wfdb(p, np.random.default_rng(0).normal(size=(3, 500))*.3, 250, leads=['I', 'II', 'V1'])
    return p

@SETTINGS
@given(st.text(max_size=60))
def test_scp_codes_strings(s):
    try: d = parse_scp_codes(s)
    except ECGDataError: return
    assert isinstance(d, dict)

def _copy_record(record):
    d = Path(tempfile.mkdtemp())
    shutil.copy(f'{record}.hea', d)
    shutil.copy(f'{record}.dat', d)
    return d/record.name

@SETTINGS
@given(st.data())
def test_mangled_header(record, data):
    p = _copy_record(record)
    lines = Path(f'{p}.hea').read_text().splitlines()
    i = data.draw(st.integers(0, len(lines)-1))
    words = lines[i].split()
    j = data.draw(st.integers(0, max(len(words)-1, 0)))
    if words: words[j] = data.draw(st.one_of(st.text(max_size=8), st.integers(-10**6, 10**6).map(str), st.just('')))
    lines[i] = ' '.join(words)
    if data.draw(st.booleans()): lines = lines[:data.draw(st.integers(0, len(lines)))]
    Path(f'{p}.hea').write_text('\n'.join(lines) + '\n')
    try: r = read_record(p)
    except ECGDataError: return
    assert r.x.ndim == 2 and np.isfinite(r.x).all()

@SETTINGS
@given(st.integers(0, 3000), st.binary(max_size=64))
def test_mangled_dat(record, cut, junk):
    p = _copy_record(record)
    raw = Path(f'{p}.dat').read_bytes()
    Path(f'{p}.dat').write_bytes(raw[:cut] + junk)
    try: r = read_record(p)
    except ECGDataError: return
    assert r.x.shape == (3, 500)

COLS = ['scp_codes', 'strat_fold', 'filename_lr', 'ecg_id']
@SETTINGS
@given(st.sampled_from(COLS),
       st.one_of(st.none(), st.text(max_size=12), st.integers(-5, 20), st.floats(allow_nan=True)),
       st.integers(0, 11), st.booleans())
def test_mangled_database(corpus, col, value, row, drop):
    d = Path(tempfile.mkdtemp())/'c'
    shutil.copytree(corpus, d, ignore=shutil.ignore_patterns('.ecgdiff_cache'))
    db = pd.read_csv(d/'ptbxl_database.csv')
    if drop: db = db.drop(columns=[col])
    else:
        db[col] = db[col].astype(object)
        db.loc[row, col] = value
    db.to_csv(d/'ptbxl_database.csv', index=False)
    try: ds = load_ptbxl(d, progress=False, cache=False)
    except ECGDataError: return
    assert ds.X.shape[1:] == (12, 1000) and len(ds.Y) == len(ds.meta)

# --- the paired-npy loader (02b_paired) -------------------------------------------------------------------------
from ecgdiff.paired import KINDS, PairedDataError, kind_dir, paired_dataloaders

SHAPES = {'images': (8, 8), 'freq_embeddings': (8,), 'amp_init': (4, 4), 'emb_init': (4,)}

def _paired(root:Path, n=(4, 2)):
    "A small valid paired-npy dataset (random float32 arrays of consistent shapes)."
    rng = np.random.default_rng(0)
    for s, m in zip(('train', 'val'), n):
        for k in KINDS:
            d = kind_dir(root, k, s)
            d.mkdir(parents=True, exist_ok=True)
            for i in range(m): np.save(d/f'{i}_lead0_z0_w000.npy', rng.normal(size=SHAPES[k]).astype(np.float32))
    return root

def _bad_array(data, shape):
    return data.draw(st.sampled_from([
        np.zeros((0,) + shape[1:], np.float32), np.zeros(shape + (2,), np.float32), np.zeros(shape[:-1], np.float32),
        np.ones(shape, np.int64), np.full(shape, np.nan, np.float32), np.full(shape, np.inf, np.float32),
        np.ones(shape, np.complex64), np.array('text'), np.float32(1.), np.ones(shape, np.float16)]))

@SETTINGS
@given(st.data())
def test_mangled_paired(data):
    "Random corruption of a paired-npy dataset: the loader either works or raises `PairedDataError`, nothing else."
    root = _paired(Path(tempfile.mkdtemp())/'ds')
    for _ in range(data.draw(st.integers(1, 3))):
        k, s = data.draw(st.sampled_from(KINDS)), data.draw(st.sampled_from(['train', 'val']))
        files = sorted(kind_dir(root, k, s).glob('*.npy'))
        what = data.draw(st.sampled_from(['bytes', 'truncate', 'array', 'all_kind', 'constant', 'delete', 'extra',
                                          'rmdir']))
        f = files[data.draw(st.integers(0, len(files) - 1))] if files else None
        if what == 'bytes' and f: f.write_bytes(data.draw(st.binary(max_size=200)))
        elif what == 'truncate' and f: f.write_bytes(f.read_bytes()[:data.draw(st.integers(0, 200))])
        elif what == 'array' and f: np.save(f, _bad_array(data, SHAPES[k]))
        elif what == 'all_kind':                                    # every file of a kind consistently wrong
            a = _bad_array(data, SHAPES[k])
            for s2 in ('train', 'val'):
                for g in kind_dir(root, k, s2).glob('*.npy'): np.save(g, a)
        elif what == 'constant':
            for g in kind_dir(root, k, 'train').glob('*.npy'): np.save(g, np.full(SHAPES[k], 3., np.float32))
        elif what == 'delete' and f: f.unlink()
        elif what == 'extra' and kind_dir(root, k, s).is_dir(): (kind_dir(root, k, s)/'notes.txt').write_text('x')
        elif what == 'rmdir': shutil.rmtree(kind_dir(root, k, s), ignore_errors=True)
    try: dls, st_ = paired_dataloaders(root, bs=2, augment=False)
    except PairedDataError: return
    x, amp, emb = dls.train.one_batch()
    assert all(torch_finite(t) for t in (x, amp, emb))

def torch_finite(t): return bool(t.isfinite().all())

def test_paired_errors_name_the_problem(tmp_path):
    "The messages of the structural problems name the kind and what was expected."
    for k, a, msg in [('freq_embeddings', np.zeros((8, 2), np.float32), r'freq_embeddings.*1-D'),
                      ('images', np.zeros((8,), np.float32), r'images.*2-D'),
                      ('emb_init', np.zeros((0,), np.float32), r'emb_init.*empty'),
                      ('amp_init', np.full((4, 4), 2., np.float32), r'amp_init.*(constant|std)')]:
        root = _paired(tmp_path/k)
        for s in (('train',) if 'std' in msg else ('train', 'val')):
            for g in kind_dir(root, k, s).glob('*.npy'): np.save(g, a)
        with pytest.raises(PairedDataError, match=msg): paired_dataloaders(root, bs=2, augment=False)
