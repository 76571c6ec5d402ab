"""The `ecgdiff_fmri` console script (ecgdiff.fmri_ldm:fmri_cli): argument parsing, train/evaluate runs, bad input.

The console script that pip generates calls `fmri_cli()` at the top level of a script; `_script` writes the same
two lines to a file, so these tests run the command line exactly as installed, before the entry point is registered.
"""
import json, os, shutil, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from clirun import run_cli

from ecgdiff.fmri_ldm import DEFAULT_CONFIG, fmri_cli, load_ldm, synth_fmri, write_fmri_npz

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1', 'MPLBACKEND': 'Agg'}

# a configuration small enough for seconds on one CPU core: 2 subjects x 200 TRs x 120 voxels, rank 4
TINY = {'data': {'n_blocks': 10, 'synthetic': {'n_subjects': 2, 'n_timepoints': 200, 'n_voxels': 120, 'rank': 4}},
        'vae': {'hidden': [64], 'n_latent': 4, 'epochs': 3, 'bs': 32},
        'diffusion': {'T': 100, 'hidden': 32, 'n_blocks': 1, 't_dim': 16, 'epochs': 3},
        'sampling': {'n_steps': 5}}


pytestmark = pytest.mark.usefixtures('one_thread')   # tests/conftest.py


def _config(tmp_path, name='config.yaml', **changes):
    cfg = {**TINY, 'out_dir': str(tmp_path/'run'), **changes}
    (tmp_path/name).write_text(yaml.safe_dump(cfg))
    return tmp_path/name


def _script(tmp_path):
    f = tmp_path/'ecgdiff_fmri_script.py'
    f.write_text('from ecgdiff.fmri_ldm import fmri_cli\nfmri_cli()\n')
    return f


def _json(out): return json.loads(out[out.index('{'):])   # after fastai's epoch tables


def _run(tmp_path, *args):
    cmd = [sys.executable, str(_script(tmp_path)), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=300)


def test_default_yaml_is_the_embedded_default():
    assert (REPO/'configs/fmri/default.yaml').read_text() == DEFAULT_CONFIG
    cfg = yaml.safe_load(DEFAULT_CONFIG)
    assert (cfg['data']['synthetic']['n_voxels'], cfg['vae']['n_latent']) == (3092, 256)


def test_help_lists_the_options(tmp_path):
    r = _run(tmp_path, '--help')
    assert r.returncode == 0, r.stderr
    for opt in ('--config', '--mode', '--checkpoint'): assert opt in r.stdout
    exe = shutil.which('ecgdiff_fmri')     # once the lead has registered the entry point
    if exe:
        r2 = subprocess.run([exe, '--help'], capture_output=True, text=True, env=ENV, timeout=120)
        assert r2.returncode == 0 and '--checkpoint' in r2.stdout


def _run_here(*args):
    "`ecgdiff_fmri ARGS` as installed, in this process (tests/clirun.py)."
    return run_cli(fmri_cli, *args, prog='ecgdiff_fmri', env={'MPLBACKEND': 'Agg'})


def test_train_then_evaluate(tmp_path):
    cfg = _config(tmp_path)
    r = _run_here('--config', cfg, '--mode', 'train')
    assert r.returncode == 0, r.stderr
    run = tmp_path/'run'
    assert (run/'model.pth').is_file() and (run/'synthetic_fmri.npz').is_file()
    assert {'best.pth', 'latest.pth'} <= {p.name for p in (run/'vae').iterdir()}
    assert {'best.pth', 'latest.pth'} <= {p.name for p in (run/'diffusion').iterdir()}
    assert not (run/'metrics.json').exists()                       # train only
    res = _json(r.stdout)
    assert res['mode'] == 'train' and 'vae_r' not in res

    r = _run_here('--config', cfg, '--mode', 'evaluate', '--checkpoint', run/'model.pth')
    assert r.returncode == 0, r.stderr
    res = _json(r.stdout)
    saved = json.loads((run/'metrics.json').read_text())
    assert saved['vae_r'] == pytest.approx(res['vae_r'])
    assert res['n_voxels'] == 120 and res['n_latent'] == 4 and -1 <= res['vae_r'] <= 1
    df = np.genfromtxt(run/'metrics.csv', delimiter=',', dtype=str, skip_header=1)
    assert {'vae_reconstruction', 'pca_reconstruction', 'generated', 'matched_noise', 'train_volumes'} == set(df[:, 0])
    figs = {p.name for p in (run/'figures').iterdir()}
    assert figs == {'training_curves.png', 'reconstructions.png', 'correlations.png', 'latents.png',
                    'latents_subjects.png', 'generated.png'}
    assert all((run/'figures'/f).stat().st_size > 5000 for f in figs)
    assert not list(run.rglob('*.tmp'))                           # atomic writes leave no temporary files
    um = os.umask(0)
    os.umask(um)                                 # outputs get the usual permissions
    for f in ('metrics.json', 'metrics.csv', 'synthetic_fmri.npz', 'figures/generated.png'):
        assert (run/f).stat().st_mode & 0o777 == 0o666 & ~um, f'{f}: {oct((run/f).stat().st_mode)}'



def test_both_in_process_with_a_checkpoint_path(tmp_path, capsys):
    cfg = _config(tmp_path, evaluate={'figures': False}, training={'mode': 'joint', 'joint_epochs': 2})
    fmri_cli(config=str(cfg), mode='both', checkpoint=str(tmp_path/'elsewhere'/'m.pth'))
    res = _json(capsys.readouterr().out)
    assert res['checkpoint'] == str(tmp_path/'elsewhere'/'m.pth')
    model, mcfg, hist = load_ldm(tmp_path/'elsewhere'/'m.pth')
    assert list(hist) == ['joint'] and mcfg['training']['mode'] == 'joint' and model.vae.n_in == 120
    assert not (tmp_path/'run'/'model.pth').exists()


def _error(capsys, **kw):
    with pytest.raises(SystemExit) as e: fmri_cli(**kw)
    assert e.value.code == 2
    return capsys.readouterr().err


def test_bad_config_and_mode(tmp_path, capsys):
    bad = tmp_path/'bad.yaml'
    bad.write_text('vae:\n  n_latnet: 8\n')
    err = _error(capsys, config=str(bad), mode='train')
    assert ('bad.yaml' in err and "unknown key(s) ['vae.n_latnet']" in err and "valid keys of 'vae'" in err
            and "'n_latent'" in err)
    err = _error(capsys, config=str(_config(tmp_path)), mode='fit')
    assert "mode='fit'" in err
    err = _error(capsys, config=str(_config(tmp_path)), mode='evaluate')
    assert 'checkpoint not found' in err and 'model.pth' in err
    bad.write_text('diffusion:\n  schedule: quadratic\n')
    assert "diffusion.schedule='quadratic'" in _error(capsys, config=str(bad), mode='train')


def test_set_overrides_the_config(tmp_path, capsys):
    "--set KEY=VALUE changes the configuration that is trained (and written to out_dir/config.yaml); a bad key is named"
    cfg = _config(tmp_path, evaluate={'figures': False})
    r = _run_here('--config', cfg, '--mode', 'train', '--set', 'vae.epochs=1', 'diffusion.epochs=2', '--quiet')
    assert r.returncode == 0, r.stderr
    saved = yaml.safe_load((tmp_path/'run'/'config.yaml').read_text())
    assert (saved['vae']['epochs'], saved['diffusion']['epochs'], saved['vae']['n_latent']) == (1, 2, 4)
    _, _, hist = load_ldm(tmp_path/'run'/'model.pth')
    assert (len(hist['vae']['values']), len(hist['diffusion']['values'])) == (1, 2)
    err = _error(capsys, config=str(cfg), mode='train', set=['vae.n_latnet=3'])
    assert "overrides: unknown key(s) ['vae.n_latnet']" in err and "'n_latent'" in err
    err = _error(capsys, config=str(cfg), mode='train', set=['vae.epochs=many'])
    assert "overrides: vae.epochs: 'many' is not a valid int" in err


@pytest.mark.parametrize('case', ['voxels', 'nan', 'empty_key', 'empty_file'])
def test_bad_npz_names_the_subject(tmp_path, capsys, case):
    X = synth_fmri(n_subjects=3, n_timepoints=60, n_voxels=50, rank=2, seed=0)
    f = tmp_path/f'{case}.npz'
    if case == 'voxels': X['sub-03'] = X['sub-03'][:, :40]
    if case == 'nan': X['sub-02'][5, 7] = np.nan
    if case == 'empty_key': X['sub-01'] = np.zeros((0, 50), np.float32)
    if case == 'empty_file': f.write_bytes(b'')
    else: write_fmri_npz(f, X)
    err = _error(capsys, config=str(_config(tmp_path, data={'path': str(f)})), mode='train')
    expect = {'voxels': "subject 'sub-03' has 40 voxels but 'sub-01' has 50",
              'nan': "subject 'sub-02' has 1 NaN/inf value(s), the first at time point 5, voxel 7",
              'empty_key': "subject 'sub-01' is empty", 'empty_file': 'not a readable .npz'}[case]
    assert expect in err and f.name in err


def test_bad_input_exit_status_from_the_command_line(tmp_path):
    f = tmp_path/'nan.npz'
    X = synth_fmri(n_subjects=2, n_timepoints=60, n_voxels=50, rank=2, seed=0)
    X['sub-02'][0, 0] = np.inf
    write_fmri_npz(f, X)
    r = _run(tmp_path, '--config', _config(tmp_path, data={'path': str(f)}), '--mode', 'both')
    assert r.returncode == 2 and "ecgdiff_fmri: error:" in r.stderr and "subject 'sub-02'" in r.stderr
    assert 'Traceback' not in r.stderr


def test_model_and_data_voxel_mismatch(tmp_path, capsys):
    cfg = _config(tmp_path, evaluate={'figures': False})
    fmri_cli(config=str(cfg), mode='train')
    capsys.readouterr()
    f = tmp_path/'other.npz'
    write_fmri_npz(f, synth_fmri(2, 200, 90, 4, seed=1))
    err = _error(capsys, config=str(_config(tmp_path, 'other.yaml', data={'path': str(f), 'n_blocks': 10})),
                 mode='evaluate', checkpoint=str(tmp_path/'run'/'model.pth'))
    assert 'other.npz: 90 voxels' in err and 'expects 120' in err


def test_nan_loss_stops_with_a_message(tmp_path, capsys):
    cfg = _config(tmp_path, vae={**TINY['vae'], 'lr': 1e12})        # the first step overflows the decoder
    with pytest.warns(Warning, match='non-finite training loss'), pytest.raises(SystemExit) as e:
        fmri_cli(config=str(cfg), mode='train')
    assert e.value.code == 1
    assert 'ecgdiff_fmri: training stopped: non-finite training loss' in capsys.readouterr().err
    assert not (tmp_path/'run'/'model.pth').exists()
