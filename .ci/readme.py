"""Render nbs/index.ipynb to README.md without Quarto (nbdev_readme needs it): markdown cells as they are, visible code
cells as python blocks, figures written to nbs/images/ and linked. `--check` exits non-zero when README.md is stale.
Usage: python .ci/readme.py [--check]"""
import base64, os, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HIDE = re.compile(r'^#\|\s*(hide|export|exporti|exports|default_exp)\b', re.M)
DIRECTIVE = re.compile(r'^#\|.*\n?', re.M)

def render(execute:bool=True)->tuple[str, dict]:
    from execnb.nbio import read_nb
    from execnb.shell import CaptureShell
    nb = read_nb(ROOT/'nbs'/'index.ipynb')
    if execute:
        os.environ.setdefault('MPLBACKEND', 'Agg'); cwd = os.getcwd(); os.chdir(ROOT/'nbs')
        try: CaptureShell().run_all(nb)
        finally: os.chdir(cwd)
    parts, images = ["<!-- generated from nbs/index.ipynb by .ci/readme.py: edit the notebook -->"], {}
    for i, c in enumerate(nb.cells):
        src = ''.join(c.source)
        if c.cell_type == 'markdown': parts.append(re.sub(r'\]\((\w+\.ipynb)\)', r'](nbs/\1)', src)); continue
        if c.cell_type != 'code' or HIDE.search(src): continue
        parts.append("```python\n" + DIRECTIVE.sub('', src).strip() + "\n```")
        for o in c.get('outputs', []):
            data = o.get('data', {})
            if 'image/png' in data:
                name = f"images/index_cell{i}_{len(images)}.png"
                images[name] = base64.b64decode(data['image/png'])
                parts.append(f"![]({'nbs/' + name})")
            elif o.get('output_type') == 'stream' or 'text/plain' in data:
                txt = ''.join(o.get('text', data.get('text/plain', '')))
                if txt.strip(): parts.append("```\n" + txt.rstrip() + "\n```")
    return '\n\n'.join(parts) + '\n', images

def text_only(md:str)->str: return re.sub(r'!\[\]\([^)]*\)\n*', '', md)

if __name__ == '__main__':
    if '--check' in sys.argv:
        md, _ = render(execute=False)
        if text_only(md) != text_only((ROOT/'README.md').read_text()):
            sys.exit("README.md is out of date with nbs/index.ipynb: run `make readme`")
        print('README.md is in sync with nbs/index.ipynb')
    else:
        md, images = render()
        for name, b in images.items():
            p = ROOT/'nbs'/name; p.parent.mkdir(exist_ok=True); p.write_bytes(b)
        tmp = ROOT/'.README.md.tmp'; tmp.write_text(md); os.replace(tmp, ROOT/'README.md')
        print(f"README.md written ({len(images)} figures)")
