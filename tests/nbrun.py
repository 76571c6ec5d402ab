"""Run nbdev's `nbdev_test` and keep each executed notebook (outputs included) in `_exec/` for the docs check.

    python tests/nbrun.py [nbdev_test options]   # e.g. --n_workers 2 --timing, --flags slow, --path nbs/00_data.ipynb

It is `nbdev.test.nbdev_test` itself, same flags and workers; the only addition is that the shell which runs a
notebook writes the notebook out after running it, so the docs test renders real outputs without a second execution.
"""
import os, sys
from pathlib import Path
import nbdev.test
from execnb.nbio import write_nb
from execnb.shell import CaptureShell

OUT = Path(os.environ.get('ECGDIFF_EXEC_DIR', Path(__file__).resolve().parents[1]/'_exec'))

class _SavingShell(CaptureShell):
    "A `CaptureShell` that writes the notebook it ran to `OUT/<name>` (also when a cell failed)."
    def __init__(self, path=None, *args, **kwargs):
        super().__init__(path, *args, **kwargs)
        self._nb_path = Path(path) if path else None
    def run_all(self, nb, *args, **kwargs):
        try: return super().run_all(nb, *args, **kwargs)
        finally:
            if self._nb_path is not None:
                OUT.mkdir(parents=True, exist_ok=True)
                tmp = OUT/f'.{self._nb_path.name}.tmp'
                write_nb(nb, tmp)
                os.replace(tmp, OUT/self._nb_path.name)

if __name__ == '__main__':
    nbdev.test.CaptureShell = _SavingShell      # nbdev_test's workers are forked: they inherit this
    sys.argv[0] = 'nbdev_test'
    nbdev.test.nbdev_test()
