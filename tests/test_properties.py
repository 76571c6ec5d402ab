"Property-based tests (hypothesis): the loaders meet random malformed input with the library's own errors, never a crash."
import os, shutil, tempfile
from pathlib import Path
import numpy as np, pandas as pd, pytest
from hypothesis import given, settings, HealthCheck, strategies as st
from ecgdiff.data import ECGDataError, load_ptbxl, parse_scp_codes, read_record, write_ptbxl, write_wfdb

SETTINGS = settings(max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", 60)), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

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
    d = Path(tempfile.mkdtemp()); shutil.copy(f'{record}.hea', d); shutil.copy(f'{record}.dat', d); return d/record.name

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
@given(st.sampled_from(COLS), st.one_of(st.none(), st.text(max_size=12), st.integers(-5, 20), st.floats(allow_nan=True)),
       st.integers(0, 11), st.booleans())
def test_mangled_database(corpus, col, value, row, drop):
    d = Path(tempfile.mkdtemp())/'c'
    shutil.copytree(corpus, d, ignore=shutil.ignore_patterns('.ecgdiff_cache'))
    db = pd.read_csv(d/'ptbxl_database.csv')
    if drop: db = db.drop(columns=[col])
    else: db[col] = db[col].astype(object); db.loc[row, col] = value
    db.to_csv(d/'ptbxl_database.csv', index=False)
    try: ds = load_ptbxl(d, progress=False, cache=False)
    except ECGDataError: return
    assert ds.X.shape[1:] == (12, 1000) and len(ds.Y) == len(ds.meta)
