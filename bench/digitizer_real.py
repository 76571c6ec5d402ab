"""The classical digitizer on the real photos (ecg-photos) and on another renderer's pages (ecg-renders
clean/distorted), through `digitize_files` (what `ecgdiff_digitize` runs): per file the layout, leads read for >= 2 s,
heart rate (`page_heart_rate`), corr(II, I+III) before the Einthoven correction; the photo floors of issue 19; and the
Kaggle 2025 score and median CinC SNR of the renders against their truth. Prints one JSON object.

    python bench/digitizer_real.py [--out DIR]      (DIR keeps the records, overlays and report.json of each set)
"""
import argparse, json, tempfile, time
from pathlib import Path
import numpy as np
import wfdb
from ecgdiff.data import LEADS
from ecgdiff.digitizer import digitize_files, kaggle_score, snr_cinc

S = Path(__file__).resolve().parents[2]/'shared'/'data'
p = argparse.ArgumentParser()
p.add_argument('--out', default=None)
a = p.parse_args()
out = Path(a.out or tempfile.mkdtemp())

def truth(js:Path)->np.ndarray:
    d = json.loads(js.read_text())
    rec = wfdb.rdrecord(str(S/'ecg-renders'/'records'/js.name.split('-')[0]))
    g = np.full((12, rec.sig_len), np.nan, np.float32)
    names = [n.upper() for n in rec.sig_name]
    for q in d['leads']:
        i, j = int(q['start_sample']), int(q['end_sample'])
        g[LEADS.index(q['lead_name']), i:j] = rec.p_signal[i:j, names.index(q['lead_name'].upper())]
    return g

res = {}
t = time.time()
digitize_files(S/'ecg-photos', out/'photos', mode='classical', progress=False)
rep = json.loads((out/'photos'/'report.json').read_text())
ok8 = sum(len(r.get('leads', [])) >= 8 for r in rep)
okhr = sum(r.get('hr') is not None and 30 <= r['hr'] <= 220 and (r.get('einthoven') or 0) >= .7 for r in rep)
res['photos'] = dict(files=rep, leads8=ok8, hr_einthoven=okhr, n=len(rep), floors=dict(leads8=11, hr_einthoven=10),
                     s=round(time.time() - t, 1))
for kind in ('clean', 'distorted'):
    t = time.time()
    r = digitize_files(S/'ecg-renders'/kind, out/kind, mode='classical', progress=False)
    pages = sorted(q for q in (S/'ecg-renders'/kind).iterdir() if q.suffix in ('.png', '.jpg'))
    gs, ps = [truth(q.with_suffix('.json')) for q in pages], []
    for q, g in zip(pages, gs):
        x = np.full_like(g, np.nan)
        if (out/kind/f'{q.stem}.hea').exists():
            y = wfdb.rdrecord(str(out/kind/q.stem)).p_signal.T
            L = min(g.shape[1], y.shape[1])
            x[:, :L] = y[:, :L]
        ps.append(x)
    res[kind] = dict(digitized=len(r['ok']), n=len(pages), kaggle=round(kaggle_score(gs, ps, 500), 2),
                     median_cinc=round(float(np.median([snr_cinc(g, x, 500) for g, x in zip(gs, ps)])), 2),
                     s=round(time.time() - t, 1))
print(json.dumps(res, indent=1))
