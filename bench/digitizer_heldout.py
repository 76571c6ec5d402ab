"""The classical digitizer (and the learned pipeline, where weights are given) on pages that the project's own renderer
draws from held-out real PTB-XL records (folds 9-10 of ../shared/data/ptbxl-fold10, never used in training), clean and
photographed with `TEST_DISTORT`: median CinC 2024 SNR and Kaggle 2025 score (dB). Prints JSON.

    python bench/digitizer_heldout.py [--n 12] [--checkpoints DIR] [--seed 0]
"""
import argparse, json, time
from pathlib import Path
import numpy as np
import pandas as pd
from ecgdiff.digitizer import (TEST_DISTORT, DigitizeError, Digitizer, digitize_classical, distort, kaggle_score,
                               random_page, snr_cinc)

S = Path(__file__).resolve().parents[2]/'shared'/'data'/'ptbxl-fold10'
p = argparse.ArgumentParser()
p.add_argument('--n', type=int, default=12)
p.add_argument('--checkpoints', default=None)
p.add_argument('--seed', type=int, default=0)
a = p.parse_args()
db = pd.read_csv(S/'ptbxl_database.csv')
db = db[db.strat_fold.isin([9, 10])].sort_values('ecg_id')
rng = np.random.default_rng(a.seed)
recs = [S/f for f in rng.choice(db.filename_lr.values, a.n, replace=False)]
paths = {'classical': digitize_classical}
if a.checkpoints: paths['learned'] = Digitizer(a.checkpoints, fallback=False)
res = dict(records=[r.name for r in recs], folds=[9, 10], renderer='ecgdiff.digitizer.random_page (standard pages)')
for kind in ('clean', 'distorted'):
    pages = []
    for i, r in enumerate(recs):
        img, tr = random_page(np.random.default_rng([a.seed, i]), record=r, fs=500, p_standard=1, strokes=False,
                              dpi=(100, 200))
        if kind == 'distorted': img, tr = distort(img, tr, np.random.default_rng([a.seed, i, 1]), **TEST_DISTORT)
        pages.append((img, tr))
    for name, f in paths.items():
        t, gs, ps, fails = time.time(), [], [], 0
        for img, tr in pages:
            g = tr.signals()
            q = np.full_like(g, np.nan)
            try:
                x = f(img).x
                L = min(g.shape[1], x.shape[1])
                q[:, :L] = x[:, :L]
            except DigitizeError: fails += 1
            gs.append(g)
            ps.append(q)
        cinc = float(np.median([snr_cinc(g, q, 500) for g, q in zip(gs, ps)]))
        res[f'{name}_{kind}'] = dict(kaggle=round(kaggle_score(gs, ps, 500), 2), failures=fails, n=len(pages),
                                     median_cinc=round(cinc, 2),
                                     s_per_page=round((time.time() - t)/len(pages), 2))
print(json.dumps(res, indent=1))
