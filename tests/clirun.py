"""Run a console script's entry point inside the test process, as the installed script would run it.

Each console script costs 3-5 s of imports (torch, fastai) when started as a new process, and the CLI tests call
them dozens of times. `run_cli` calls the same `@call_parse` entry point with `sys.argv` set, captures stdout and
stderr, and turns `SystemExit` into a return code as the interpreter does (a string message goes to stderr, exit 1).
The installed wrappers themselves are run as processes in tests/test_package.py (`--help` of every script) and in
tests/test_reliability.py (exit status of bad input, Ctrl-C, torchrun)."""
import contextlib, io, os, sys, traceback
from dataclasses import dataclass
from fastcore.script import anno_parser

@dataclass
class CLIResult:
    "What `subprocess.run(..., capture_output=True, text=True)` would have returned."
    returncode: int
    stdout: str
    stderr: str

def _exit_code(e:SystemExit, err)->int:
    if e.code is None: return 0
    if isinstance(e.code, int): return e.code
    print(e.code, file=err)
    return 1

def _call(entry):
    """Parse `sys.argv` as the installed wrapper of a `@call_parse` function does, then call it (plain entry points
    parse it themselves)."""
    f = getattr(entry, '__wrapped__', None)
    if f is None: return entry()
    args = vars(anno_parser(f, prog=sys.argv[0]).parse_args(sys.argv[1:]))
    for k in ('pdb', 'xtra'): args.pop(k, None)      # fastcore's own options
    return f(**args)

def run_cli(entry, # A `@call_parse` console entry point, e.g. `ecgdiff.augment.augment_cli`
            *args, # Its command-line arguments (converted with `str`)
            prog:str|None=None, # The program name in messages (default: the entry point's name)
            env:dict|None=None, # Environment variables set during the call
           )->CLIResult:
    "Call `entry` with `sys.argv = [prog, *args]`; returns its exit status and what it printed."
    out, err = io.StringIO(), io.StringIO()
    argv, saved_env = sys.argv, {k: os.environ.get(k) for k in (env or {})}
    sys.argv = [prog or entry.__name__, *map(str, args)]
    os.environ.update(env or {})
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try: _call(entry)
            except SystemExit as e: code = _exit_code(e, err)
            except Exception:
                traceback.print_exc(file=err)
                code = 1
    finally:
        sys.argv = argv
        for k, v in saved_env.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v
    return CLIResult(code, out.getvalue(), err.getvalue())
