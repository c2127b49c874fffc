"""benchmarks/smoke.py: what makes a smoke run fail (pure), every benchmark
declaring its KEYS and taking --smoke, and a broken benchmark caught."""
import ast
import os
import textwrap

from benchmarks import smoke

GOOD = '{\n  "a": 1,\n  "b": {"c": 2}\n}\n'


def test_a_run_that_printed_every_key_passes():
    assert smoke.problems(("a", "b"), 0, "log line\n" + GOOD) == []


def test_a_crash_no_json_or_a_missing_key_fails():
    assert smoke.problems(("a",), 1, GOOD) == ["exited with 1"]
    assert smoke.problems(("a",), 0, "Traceback ...\n") == ["printed no JSON object"]
    assert smoke.problems(("a", "z"), 0, GOOD) == ["its JSON lacks z"]
    assert smoke.problems(None, 0, GOOD) == ["declares no KEYS"]


def test_the_last_object_counts_and_braces_inside_lines_do_not():
    text = '{"a": 1}\nwarning: {not json}\n{"b": 2, "a": 3}\n'
    assert smoke.last_object(text) == {"b": 2, "a": 3}
    assert smoke.last_object("x = {1}\n") is None


def test_every_benchmark_declares_its_keys_and_has_a_smoke_mode():
    assert len(smoke.names()) >= 12
    for name in smoke.names():
        path = os.path.join(smoke.HERE, name + ".py")
        keys = smoke.declared_keys(path)
        assert keys and all(isinstance(k, str) for k in keys), name
        with open(path) as f:
            calls = [n for n in ast.walk(ast.parse(f.read()))
                     if isinstance(n, ast.Call) and getattr(n.func, "attr", None) == "arguments"
                     and getattr(n.func.value, "id", None) == "smoke"]
        assert calls, f"{name} does not read its arguments with smoke.arguments"


def test_a_benchmark_whose_floor_breaks_is_caught(tmp_path):
    # the shape of the real ones: KEYS, arguments, a floor, then the JSON
    (tmp_path / "broken.py").write_text(textwrap.dedent('''
        import argparse, json, sys
        sys.path.insert(0, REPO)
        from benchmarks import smoke
        KEYS = ("agent_s", "floor_s")
        def floor():
            raise RuntimeError("UUID mismatch between <uuid> and <sysinfo>")
        args = smoke.arguments(argparse.ArgumentParser(), rounds=1)
        print(json.dumps({"agent_s": 1.0, "floor_s": floor()}))
    '''.replace("REPO", repr(os.path.dirname(smoke.HERE)))))
    found, _, output = smoke.run("broken", directory=str(tmp_path))
    assert found == ["exited with 1", "printed no JSON object"]
    assert "UUID mismatch" in output
    (tmp_path / "partial.py").write_text(textwrap.dedent('''
        import argparse, json, sys
        sys.path.insert(0, REPO)
        from benchmarks import smoke
        KEYS = ("agent_s", "floor_s")
        args = smoke.arguments(argparse.ArgumentParser(), rounds=1)
        assert args.smoke and args.rounds == 1
        print(json.dumps({"agent_s": 1.0}))
    '''.replace("REPO", repr(os.path.dirname(smoke.HERE)))))
    assert smoke.run("partial", directory=str(tmp_path))[0] == ["its JSON lacks floor_s"]


def test_every_benchmark_s_smoke_is_in_the_suite():
    from tests.e2e import test_benchmarks_beds_e2e, test_benchmarks_e2e
    covered = [*test_benchmarks_e2e.ON_THE_MACHINE, *test_benchmarks_beds_e2e.ON_BEDS, "service"]
    assert sorted(covered) == smoke.names()
