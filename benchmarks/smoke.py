"""Every benchmark's --smoke: one round at the smallest sizes, to show that
it still runs and prints what it says it prints (benchmarks nobody runs
rot: three once crashed on main unseen).

A benchmark declares KEYS, the keys its JSON object always has, and reads
its arguments with `arguments(parser, **smallest)`: with --smoke, the
smallest sizes replace the others.  `python benchmarks/smoke.py [NAME ...]`
runs them (all by default) and exits 1 when one crashes, prints no JSON
object or lacks one of its KEYS; the test suite runs them all
(tests/e2e/test_benchmarks_*_e2e.py)."""
import argparse
import ast
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NOT_BENCHMARKS = ("__init__.py", "smoke.py")


def arguments(parser, **smallest):
    """parser's arguments, with --smoke added: given, the smallest sizes."""
    parser.add_argument("--smoke", action="store_true",
                        help="one round at the smallest sizes: shows that the benchmark "
                             "runs and prints its keys, measures nothing")
    args = parser.parse_args()
    if args.smoke:
        vars(args).update(smallest)
    return args


def names():
    return sorted(f[:-3] for f in os.listdir(HERE)
                  if f.endswith(".py") and f not in NOT_BENCHMARKS)


def declared_keys(path):
    """The KEYS a benchmark file declares (read, not imported)."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and getattr(node.targets[0], "id", None) == "KEYS"):
            return tuple(ast.literal_eval(node.value))
    return None


def last_object(text):
    """The last JSON object in text that starts a line, or None."""
    decoder, found, at = json.JSONDecoder(), None, 0
    while (at := text.find("{", at)) >= 0:
        if at == 0 or text[at - 1] == "\n":
            try:
                value, end = decoder.raw_decode(text, at)
            except ValueError:
                value, end = None, at + 1
            if isinstance(value, dict):
                found = value
            at = end
        else:
            at += 1
    return found


def problems(keys, returncode, stdout):
    """What is wrong with one smoke run (pure): [] when nothing."""
    if keys is None:
        return ["declares no KEYS"]
    out = []
    if returncode != 0:
        out.append(f"exited with {returncode}")
    printed = last_object(stdout)
    if printed is None:
        out.append("printed no JSON object")
    else:
        missing = [k for k in keys if k not in printed]
        if missing:
            out.append(f"its JSON lacks {', '.join(missing)}")
    return out


def run(name, timeout=1200, directory=HERE):
    """Run one benchmark's --smoke: (problems, seconds, output)."""
    path = os.path.join(directory, name + ".py")
    started = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, path, "--smoke"], capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return ([f"did not end in {timeout} s"], time.monotonic() - started,
                (e.stdout or b"").decode(errors="replace"))
    found = problems(declared_keys(path), proc.returncode, proc.stdout)
    return found, time.monotonic() - started, proc.stdout + proc.stderr[-6000:]


def check(name):
    """Run one benchmark's --smoke; AssertionError with its output if it
    fails (the test suite's form)."""
    found, seconds, output = run(name)
    assert not found, (f"benchmarks/{name}.py --smoke: {'; '.join(found)} after "
                       f"{seconds:.0f} s; it printed:\n{output[-12000:]}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help=f"default: all ({', '.join(names())})")
    args = p.parse_args(argv)
    failed = 0
    for name in args.names or names():
        found, seconds, output = run(name)
        if found:
            failed += 1
            print(f"{name}: FAILED in {seconds:.0f} s: {'; '.join(found)}\n{output}")
        else:
            print(f"{name}: ok in {seconds:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
