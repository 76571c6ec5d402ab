"""Checks a notebook cannot hold well: the built wheel (every module and the shipped weights) and the installed console
scripts."""
import configparser, json, re, subprocess, sys, zipfile
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
CFG = configparser.ConfigParser(delimiters=['='])
CFG.read(ROOT/'settings.ini')
SCRIPTS = dict(s.split('=', 1) for s in CFG['DEFAULT'].get('console_scripts', '').split())
BIN = Path(sys.executable).parent

def _exported_modules():
    "Modules named by `#| default_exp` in the notebooks."
    mods = set()
    for nb in (ROOT/'nbs').glob('*.ipynb'):
        m = re.search(r'#\|\s*default_exp\s+([\w.]+)', nb.read_text())
        if m: mods.add('ecgdiff/' + m.group(1).replace('.', '/') + '.py')
    return mods

def test_wheel_contains_every_module(tmp_path):
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '-q', '-w', str(tmp_path), str(ROOT)],
                   check=True, capture_output=True)
    whl, = tmp_path.glob('ecgdiff-*.whl')
    names = set(zipfile.ZipFile(whl).namelist())
    on_disk = {str(p.relative_to(ROOT)) for p in (ROOT/'ecgdiff').rglob('*.py')}
    missing = (on_disk | _exported_modules()) - names
    assert not missing, f"the wheel lacks {sorted(missing)}"
    for kind in ('weights', 'tables'):          # shipped weights; the simulator's fit and the SCP statements table
        data = {str(p.relative_to(ROOT)) for p in (ROOT/'ecgdiff'/kind).glob('*') if p.is_file()}
        assert data and data <= names, f"the wheel lacks the shipped {kind} {sorted(data - names)}"
    ep = next(n for n in names if n.endswith('entry_points.txt'))
    text = zipfile.ZipFile(whl).read(ep).decode()
    for name in SCRIPTS: assert name in text, f"console script {name} not in the wheel's entry points"

_HELP = """
import contextlib, io, json, runpy, sys
res = {}
for name, path in json.loads(sys.argv[1]).items():
    buf, code = io.StringIO(), None
    sys.argv = [path, '--help']
    with contextlib.redirect_stdout(buf):
        try: runpy.run_path(path, run_name='__main__')      # the installed wrapper script itself
        except SystemExit as e: code = e.code
    res[name] = [code, buf.getvalue()]
print(json.dumps(res))
"""

@pytest.fixture(scope='module')
def helps():
    "Every installed console script run with --help, in one interpreter (torch and fastai are imported once)."
    r = subprocess.run([sys.executable, '-c', _HELP, json.dumps({n: str(BIN/n) for n in SCRIPTS})], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])

@pytest.mark.parametrize('name', sorted(SCRIPTS))
def test_console_script_help(name, helps):
    code, out = helps[name]
    assert code in (0, None) and 'usage' in out.lower(), (code, out[-500:])

def test_unknown_command_fails_clearly(tmp_path):
    r = subprocess.run([str(BIN/'ecgdiff'), 'dmeo', '--out', str(tmp_path)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode != 0 and "unknown command 'dmeo'" in r.stderr
