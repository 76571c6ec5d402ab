"""The classical digitizer on the real photos (ecg-photos) and on another renderer's pages (ecg-renders clean/distorted):
per file layout, leads of >= 2 s, heart rate of the longest lead, corr(II, I+III) (before the Einthoven correction),
and the Kaggle 2025 score against ecg-renders' ground truth. Prints one line per file and the scores.

    python bench/digitizer_real.py [photos] [clean] [distorted]     (DIGITIZER_OVERLAYS=DIR writes overlays)
"""
import sys, glob, json, time, numpy as np, wfdb, warnings
from ecgdiff.digitizer import *
from ecgdiff.digitizer import load_image
from ecgdiff.data import LEADS
digitize_new = digitize_classical
from ecgdiff.digitizer import snr_kaggle, kaggle_score, snr_cinc, overlay
from ecgdiff.data import heart_rate, detect_qrs
S = str(__import__('pathlib').Path(__file__).resolve().parents[2]/'shared'/'data')
OUT = __import__('os').environ.get('DIGITIZER_OVERLAYS')
def checks(d):
    dur = {l: float(np.isfinite(v).sum()/d.fs) for l, v in zip(LEADS, d.x)}
    leads = [l for l in LEADS if dur[l] >= 2]
    k = int(np.argmax([np.isfinite(v).sum() for v in d.x])); v = d.x[k]; ok = np.isfinite(v)
    try: hr = heart_rate(np.nan_to_num(v[ok]) if ok.sum() > d.fs else np.zeros(10), int(d.fs), None)
    except Exception: hr = float('nan')
    e = np.nan
    I, II, III = d.x[0], d.x[1], d.x[2]
    m = np.isfinite(I) & np.isfinite(II) & np.isfinite(III)
    if m.sum() > 50: e = float(np.corrcoef(II[m], (I + III)[m])[0, 1])
    return dict(layout=d.layout, n_leads=len(leads), hr=round(float(hr), 1), einthoven=round(e, 3), longest=LEADS[k])
def kit_truth(js):
    d = json.load(open(js)); rec = wfdb.rdrecord(f"{S}/ecg-renders/records/{js.split('/')[-1].split('-')[0]}")
    g = np.full((12, rec.sig_len), np.nan, np.float32)
    names = [n.upper() for n in rec.sig_name]
    for p in d['leads']:
        l = p['lead_name']; a, b = int(p['start_sample']), int(p['end_sample'])
        g[LEADS.index(l), a:b] = rec.p_signal[a:b, names.index(l.upper())]
    return g
which = sys.argv[1:] or ['photos', 'clean', 'distorted']
for w in which:
    if w == 'photos':
        files = [f for f in sorted(glob.glob(f'{S}/ecg-photos/*.*')) if not f.endswith('.md') and 'LICENSE' not in f]
    else: files = sorted(glob.glob(f'{S}/ecg-renders/{w}/*.png') + glob.glob(f'{S}/ecg-renders/{w}/*.jpg'))
    gs_, ps_ = [], []
    for f in files:
        t = time.time(); name = f.split('/')[-1]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                d = digitize_new(f, correct=False)
        except Exception as e:
            print(name, 'FAIL', type(e).__name__, e); 
            if w != 'photos': g = kit_truth(f.rsplit('.', 1)[0] + '.json'); gs_.append(g); ps_.append(np.full_like(g, np.nan))
            continue
        c = checks(d)
        if OUT: overlay(load_image(f), d).save(f'{OUT}/ov_{w}_{name.split(".")[0]}.png')
        if w != 'photos':
            g = kit_truth(f.rsplit('.', 1)[0] + '.json'); p = np.full_like(g, np.nan); L = min(g.shape[1], d.x.shape[1]); p[:, :L] = d.x[:, :L]
            c['kaggle'] = round(snr_kaggle(g, p, 500), 2); gs_.append(g); ps_.append(p)
        print(name, c, '%.1fs' % (time.time() - t), d.notes[-1:] if d.notes else '')
    if w != 'photos': print(w, 'KAGGLE', kaggle_score(gs_, ps_, 500))
