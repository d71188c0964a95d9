"""Run mutation testing on the core and print the score per file (``make mutants``).

Two stages. First ``mutmut run``: each mutant runs only the tests (of the fast selection
in ``[tool.mutmut]``) that call the mutated function, stopping at the first failure.
Then every survivor runs once more against the whole suite, which also reaches the code
through servers, subprocesses and a browser. Mutants listed in
``tests/mutants-equivalent.txt`` (by function and mutation text, so that the list
survives line shifts) are left out of the score.

The score of a file is killed (or timed out) over all its mutants less the equivalents.
Exits 1 when a core module is under 95 % or the request-reading code under 90 %.

Usage: python tools/mutants.py [--jobs N] [--no-full] [--report-only]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EQUIVALENTS = ROOT / "tests" / "mutants-equivalent.txt"
FULL_RESULTS = ROOT / "mutants" / "full-suite.json"

CORE_THRESHOLD = 95.0
READER_THRESHOLD = 90.0

#: Core modules: every function is mutated.
CORE = {
    "kratos_aal/_core.py": ["*"],
    "kratos_aal/_decision.py": ["*"],
    "kratos_aal/_kratos_api.py": ["*"],
    "kratos_aal/_cached_session.py": ["*"],
    "kratos_aal/_models.py": ["*"],
    "kratos_aal/_credentials.py": ["*"],
    "kratos_aal/_hit_key.py": ["*"],
    "kratos_aal/_web/messages.py": ["*"],
    "kratos_aal/_web/paths.py": ["*"],
    "kratos_aal/_web/urls.py": ["*"],
    "kratos_aal/_web/hops.py": ["*"],
    "kratos_aal/_web/denials.py": ["*"],
    "kratos_aal/_web/origins.py": ["*"],
    "kratos_aal/_cache.py": ["*"],
}
#: The adapters' request-reading code: only these functions count (and are run).
READERS = {
    "kratos_aal/integrations/_asgi.py": ["_web_request", "_server_host"],
    "kratos_aal/integrations/wsgi.py": ["_web_request", "_wsgi_text", "_server_host"],
    "kratos_aal/integrations/django/_glue.py": [
        "web_request",
        "_credential_pairs",
        "credentials_of",
    ],
}
#: What the second stage runs: the whole suite, less the tests that read files which
#: mutmut does not copy into mutants/ (docs, packaging), or the sources it rewrites (layers).
FULL_SUITE = [
    "tests",
    "--ignore=tests/test_docs.py",
    "--ignore=tests/test_packaging.py",
    "--ignore=tests/test_layers.py",
    # The call-count guards count Python calls: mutmut's trampolines add their own.
    "--deselect=tests/test_fastpath.py::test_the_starlette_hit_path_makes_few_calls",
    "--deselect=tests/test_fastpath.py::test_the_wsgi_hit_path_makes_few_calls",
    "--deselect=tests/test_fastpath.py::test_the_django_hit_path_makes_few_calls",
    "--deselect=tests/test_fastpath.py::test_require_aal_makes_few_calls_over_an_empty_depends",
]
FULL_SUITE_TIMEOUT = 900.0
KILLED = {"killed", "timeout", "segfault", "caught by type check"}


def module_of(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def patterns(path: str, functions: list[str]) -> list[str]:
    """Return mutmut's name patterns for *functions* of *path* (``*``: all of them)."""
    module = module_of(path)
    if functions == ["*"]:
        return [f"{module}.*"]
    return [f"{module}.x_{name}__mutmut_*" for name in functions]


def counted(path: str, mutant: str) -> bool:
    """Return whether *mutant* of *path* belongs to the scored code."""
    functions = {**CORE, **READERS}[path]
    return functions == ["*"] or function_of(mutant).rpartition(".")[2] in functions


def function_of(mutant: str) -> str:
    """Return ``module.function`` (``module.Class.method``) for a mutant's name."""
    key = mutant.rpartition("__mutmut_")[0]
    module, _, mangled = key.rpartition(".")
    if mangled.startswith("xǁ"):
        _, cls, method = mangled.split("ǁ")
        return f"{module}.{cls}.{method}"
    return f"{module}.{mangled.removeprefix('x_')}"


def status_of(exit_code: int | None) -> str:
    from mutmut.stats import status_by_exit_code

    return str(status_by_exit_code[exit_code])


def mutation_text(mutant: str, path: str) -> str:
    """Return the mutation as ``old -> new``, the lines changed, stripped."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    diff = get_diff_for_mutant(mutant, path=path).splitlines()
    old = [line[1:].strip() for line in diff if line.startswith("-") and not line.startswith("---")]
    new = [line[1:].strip() for line in diff if line.startswith("+") and not line.startswith("+++")]
    return f"{' / '.join(old)} -> {' / '.join(new)}"


def load_equivalents() -> dict[tuple[str, str], str]:
    """Read ``function | old -> new | reason`` lines; ``#`` starts a comment."""
    found: dict[tuple[str, str], str] = {}
    for number, line in enumerate(EQUIVALENTS.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        function, _, rest = line.partition(" | ")
        mutation, _, reason = rest.rpartition(" | ")
        if not (function and mutation and reason.strip()):
            sys.exit(f"{EQUIVALENTS.name}:{number}: expected 'function | old -> new | reason'")
        found[(function.strip(), mutation.strip())] = reason.strip()
    return found


@dataclass
class FileScore:
    path: str
    threshold: float
    statuses: dict[str, str] = field(default_factory=dict)
    equivalent: set[str] = field(default_factory=set)

    @property
    def scored(self) -> int:
        return len(self.statuses) - len(self.equivalent)

    @property
    def killed(self) -> int:
        return sum(1 for m, s in self.statuses.items() if s in KILLED and m not in self.equivalent)

    @property
    def score(self) -> float:
        return 100.0 * self.killed / self.scored if self.scored else 100.0

    def survivors(self) -> list[str]:
        return sorted(
            m for m, s in self.statuses.items() if s not in KILLED and m not in self.equivalent
        )


def read_results() -> dict[str, FileScore]:
    """Return the scored mutants of every file, with mutmut's status (or the full run's)."""
    full = json.loads(FULL_RESULTS.read_text()) if FULL_RESULTS.exists() else {}
    scores = {}
    for path in [*CORE, *READERS]:
        threshold = CORE_THRESHOLD if path in CORE else READER_THRESHOLD
        score = scores[path] = FileScore(path, threshold)
        meta = ROOT / "mutants" / f"{path}.meta"
        codes = json.loads(meta.read_text())["exit_code_by_key"] if meta.exists() else {}
        for mutant, code in codes.items():
            if counted(path, mutant):
                status = status_of(code)
                again = full.get(mutant)
                if status not in KILLED and again and again["status"] in KILLED:
                    status = again["status"]
                score.statuses[mutant] = status
    return scores


def run_mutmut(jobs: int) -> None:
    """Generate the mutants, then run those in scope that no earlier run killed.

    mutmut reruns every mutant it is given by name, and runs every mutant of every file
    when given none: naming only the unkilled ones keeps a rerun incremental (a changed
    function's mutants come back unchecked) and leaves the adapters' other code alone.
    """
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs)]
    names = [p for path, fns in {**CORE, **READERS}.items() for p in patterns(path, fns)]
    if not (ROOT / "mutants").is_dir():
        # The first run: mutmut generates the mutants and needs the names as patterns.
        subprocess.run([*command, *names], cwd=ROOT, check=False)  # noqa: S603
        return
    # mutmut regenerates the mutants of changed functions first: those come back "not
    # checked" and are run in the second pass. Its exit code says nothing about the score.
    for wanted in (lambda status: status not in KILLED, lambda status: status == "not checked"):
        todo = [
            mutant
            for score in read_results().values()
            for mutant, status in score.statuses.items()
            if wanted(status)
        ]
        if todo:
            subprocess.run([*command, *todo], cwd=ROOT, check=False)  # noqa: S603


def full_suite(mutant: str | None) -> str:
    """Run the whole suite in mutants/ with *mutant* active; return the status."""
    env = {**os.environ, "MUTANT_UNDER_TEST": mutant or ""}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *FULL_SUITE]
    try:
        done = subprocess.run(  # noqa: S603 (our own interpreter)
            command,
            cwd=ROOT / "mutants",
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=FULL_SUITE_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "timeout"
    return "survived" if done.returncode == 0 else "killed"


def rerun_survivors(scores: Iterable[FileScore], jobs: int) -> None:
    """Run every survivor not yet tried against the whole suite; remember the outcome."""
    full = json.loads(FULL_RESULTS.read_text()) if FULL_RESULTS.exists() else {}
    todo = []
    for score in scores:
        for mutant in score.survivors():
            text = mutation_text(mutant, score.path)
            if full.get(mutant, {}).get("mutation") != text:
                todo.append((mutant, text))
    if not todo:
        return
    print(f"whole suite: unmutated run, then {len(todo)} survivors ({jobs} at a time)")
    if full_suite(None) != "survived":
        sys.exit("the whole suite fails in mutants/ without a mutant: fix that first")
    with ThreadPoolExecutor(jobs) as pool:
        for (mutant, text), status in zip(
            todo, pool.map(lambda t: full_suite(t[0]), todo), strict=True
        ):
            full[mutant] = {"mutation": text, "status": status}
            FULL_RESULTS.write_text(json.dumps(full, indent=1, ensure_ascii=False))
            print(f"  {status:8} {mutant}")


def report(scores: dict[str, FileScore]) -> bool:
    """Print the scores and the survivors; return whether every file meets its threshold."""
    equivalents = load_equivalents()
    used: set[tuple[str, str]] = set()
    lines = []
    for score in scores.values():
        for mutant, status in score.statuses.items():
            if status in KILLED:
                continue
            key = (function_of(mutant), mutation_text(mutant, score.path))
            if key in equivalents:
                score.equivalent.add(mutant)
                used.add(key)
    ok = True
    for score in scores.values():
        unchecked = sum(1 for s in score.statuses.values() if s == "not checked")
        passed = score.score >= score.threshold and score.statuses and not unchecked
        ok = ok and bool(passed)
        note = f", {unchecked} not checked" if unchecked else ""
        print(
            f"{'ok  ' if passed else 'FAIL'} {score.path:42} {score.score:5.1f}% "
            f"({score.killed}/{score.scored} killed, {len(score.equivalent)} equivalent{note}; "
            f"needs {score.threshold:.0f}%)"
        )
        for mutant in score.survivors():
            status = score.statuses[mutant]
            lines.append(
                f"{function_of(mutant)} | {mutation_text(mutant, score.path)} | "
                f"{status}  ({mutant})"
            )
    if lines:
        print("\nNot killed (function | mutation | status), `mutmut show NAME` for the diff:")
        print("\n".join(f"  {line}" for line in lines))
    for function, mutation in sorted(set(equivalents) - used):
        print(f"note: listed as equivalent, but killed or gone: {function} | {mutation}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="mutants run at once (2)")
    parser.add_argument("--no-full", action="store_true", help="skip the whole-suite rerun")
    parser.add_argument("--report-only", action="store_true", help="score the last run")
    args = parser.parse_args()
    os.chdir(ROOT)  # mutmut reads pyproject.toml and mutants/ from the current directory
    shared = ROOT.parent / "shared"
    if "KRATOS_AAL_SHARED" not in os.environ and (shared / "kratos").is_dir():
        # Tests look for shared/ beside the repository; mutants/ is one level deeper.
        os.environ["KRATOS_AAL_SHARED"] = str(shared)
    if not args.report_only:
        run_mutmut(args.jobs)
        if not args.no_full:
            rerun_survivors(read_results().values(), args.jobs)
    return 0 if report(read_results()) else 1


if __name__ == "__main__":
    sys.exit(main())
