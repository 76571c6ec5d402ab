"""How the notebooks and exported modules read: prints one JSON object (issue 18's measures).

- exported cells: count, non-blank lines per cell (median, p90, max), share holding a single top-level definition
  (a class with its methods counts as one), the largest cells;
- exported modules: lines joining statements with `;`, lines over 120 characters (share, longest);

    python bench/code_style.py [--top 10]
"""
import argparse, ast, io, json, re, tokenize
from pathlib import Path
import numpy as np

ROOT = Path(__file__).resolve().parents[1]

def exported_cells():
    "(notebook, index, source) of every `#| export` / `#| exports` cell."
    for nb in sorted((ROOT/'nbs').glob('*.ipynb')):
        for i, c in enumerate(json.loads(nb.read_text())['cells']):
            s = ''.join(c['source'])
            if c['cell_type'] == 'code' and re.match(r'\s*#\|\s*exports?\b', s): yield nb.name, i, s

def n_defs(src:str)->int:
    "Top-level definitions: functions, classes and assignments of names (imports not counted)."
    try: tree = ast.parse(src)
    except SyntaxError: return -1
    return sum(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign))
               for n in tree.body)

def semicolon_lines(src:str)->int:
    "Lines where a `;` token joins statements (strings and comments do not count)."
    lines = set()
    try:
        for t in tokenize.generate_tokens(io.StringIO(src).readline):
            if t.type == tokenize.OP and t.string == ';': lines.add(t.start[0])
    except (tokenize.TokenError, IndentationError): pass
    return len(lines)

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--top', type=int, default=10)
    a = p.parse_args()
    cells = list(exported_cells())
    sizes = np.array([sum(bool(l.strip()) for l in s.splitlines()) - 1 for _, _, s in cells])
    defs = [n_defs(s) for _, _, s in cells]
    with_defs = [d for d in defs if d > 0]
    mods = sorted(p for p in (ROOT/'ecgdiff').glob('*.py') if p.name != '_modidx.py')
    lines = [l for m in mods for l in m.read_text().splitlines()]
    res = dict(exported_cells=len(cells), cell_lines_median=float(np.median(sizes)),
               cell_lines_p90=float(np.percentile(sizes, 90)),
               cell_lines_max=int(sizes.max()), cells_over_60=int((sizes > 60).sum()),
               single_definition_share=round(sum(d == 1 for d in with_defs)/len(with_defs), 3),
               cells_with_5_or_more_definitions=sum(d >= 5 for d in with_defs),
               largest_cells=[f'{nb}#{i}: {n}'
                              for n, (nb, i, _) in sorted(zip(sizes, cells), key=lambda t: -t[0])[:a.top]],
               module_lines=len(lines), semicolon_joined_lines=sum(semicolon_lines(m.read_text()) for m in mods),
               lines_over_120=sum(len(l) > 120 for l in lines),
               lines_over_120_share=round(sum(len(l) > 120 for l in lines)/len(lines), 4),
               longest_line=max(len(l) for l in lines))
    print(json.dumps(res, indent=1))

if __name__ == '__main__': main()
