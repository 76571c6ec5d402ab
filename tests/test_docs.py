"""The docs check: each notebook, as executed by `make nbtest` (saved in `_exec/` by tests/nbrun.py), rendered to HTML
through nbdev's own processors and nbconvert, then opened in headless Chromium, which must show its title, its text
and every figure. Quarto cannot be installed here; `.github/workflows/deploy.yaml` renders the real site with it."""
import json, os
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXEC = Path(os.environ.get('ECGDIFF_EXEC_DIR', ROOT/'_exec'))
NBS = sorted(p.name for p in (ROOT/'nbs').glob('*.ipynb'))

def render_html(nb_path:Path, dest:Path)->Path:
    "Render an executed notebook to a self-contained HTML page through nbdev's doc processors and nbconvert."
    from execnb.nbio import read_nb
    from nbdev.processors import FilterDefaults
    from nbdev.config import get_config
    import nbformat, nbconvert
    os.chdir(get_config().nbs_path)                    # nbdev's processors resolve paths from the notebooks folder
    nb = read_nb(nb_path)
    FilterDefaults()(nb)
    fm = getattr(nb, 'frontmatter_', {})
    title, desc = fm.get('title'), fm.get('description')
    nbf = nbformat.from_dict(dict(nbformat=4, nbformat_minor=5, metadata=dict(nb.metadata),
                                  cells=[dict(c) for c in nb.cells]))
    for c in nbf.cells:
        for k in [k for k in c if k not in ('cell_type', 'source', 'metadata', 'outputs', 'execution_count',
                                            'attachments', 'id')]:
            del c[k]
        c.setdefault('metadata', {})
        if c.cell_type == 'code':
            c.setdefault('outputs', [])
            c.setdefault('execution_count', None)
    html, _ = nbconvert.HTMLExporter(template_name='lab').from_notebook_node(nbf)
    if title:                                          # as Quarto shows them: the title, then the description under it
        import html as _h
        sub = f'<p class="nb-description">{_h.escape(desc)}</p>' if desc else ''
        html = html.replace('<body', f'<body data-title="{_h.escape(title)}" '
                                     f'data-description="{_h.escape(desc or "")}"', 1)
        html = html.replace('<main>', f'<main><h1 class="nb-title">{_h.escape(title)}</h1>{sub}', 1)
    dest.write_text(html)
    return dest

@pytest.mark.parametrize('name', NBS)
def test_page_renders(name, browser, tmp_path):
    src = EXEC/name
    assert src.exists(), f"{src} missing: run `make nbtest` (tests/nbrun.py) first, it saves the executed notebooks"
    page = render_html(src, tmp_path/name.replace('.ipynb', '.html'))
    browser.get(page.as_uri())
    title = browser.execute_script("return document.body.dataset.title || ''")
    assert title, f"{name}: no title (the first cell must be '# Title' and '> description')"
    desc = browser.execute_script("return document.body.dataset.description || ''")
    assert desc, f"{name}: no description (the first cell's '> description' line)"
    text = browser.execute_script("return document.body.innerText")
    assert desc in text, f"{name}: the description is not shown"
    assert title in text and len(text) > 500, f"{name}: the page shows too little text ({len(text)} characters)"
    assert 'Traceback (most recent call last)' not in text, f"{name}: an error is rendered on the page"
    imgs = browser.execute_script("return Array.from(document.images).map(i => [i.complete && i.naturalWidth "
                                  "> 0, i.src.slice(0, 40)])")
    bad = [s for ok, s in imgs if not ok]
    assert not bad, f"{name}: {len(bad)} of {len(imgs)} figures failed to load"
    cells = json.loads(src.read_text())['cells']
    n_fig_outputs = sum('image/png' in o.get('data', {}) for c in cells for o in c.get('outputs', []))
    assert len(imgs) >= n_fig_outputs, f"{name}: {n_fig_outputs} figures in the notebook, {len(imgs)} on the page"
    browser.save_screenshot(str(tmp_path/name.replace('.ipynb', '.png')))
    assert (tmp_path/name.replace('.ipynb', '.png')).stat().st_size > 10_000

def test_readme_in_sync_with_index():
    import subprocess, sys
    r = subprocess.run([sys.executable, str(ROOT/'.ci'/'readme.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
