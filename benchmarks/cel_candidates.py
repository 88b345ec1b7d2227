"""Which CEL implementation for AuthenticationConfiguration expressions (issue 22): compile and
evaluation cost of five typical rules in each candidate that is installed.

    pip install cel-expr-python common-expression-language cel-python
    python -m benchmarks.cel_candidates

Only the chosen one (cel-expr-python) is a dependency of the project (the ``cel`` extra); the
others are measured when present and reported as missing otherwise. docs/authentication-config.md
records the numbers and the choice. Each candidate runs in this process, one after the other, on
the same claims; times are the median of several rounds of ``ROUNDS`` calls.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

RULES = (
    "claims.email_verified == true",
    "claims.sub.startsWith('ci:')",
    "'admins' in claims.groups",
    "has(claims.tenant)",
    "claims.?tenant.orValue('none') != 'blocked'",
)
CLAIMS: dict[str, Any] = {
    "iss": "https://ci.example.com", "sub": "ci:build-42", "aud": ["reports"],
    "email": "build@example.com", "email_verified": True, "groups": ["dev", "admins"],
    "tenant": "t1", "iat": 1_700_000_000, "exp": 1_700_003_600,
}
ROUNDS = 2_000
REPEATS = 5


def per_call(function: Callable[[], object], rounds: int = ROUNDS) -> float:
    """Median seconds per call of ``function`` over ``REPEATS`` timed batches."""
    samples = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(rounds):
            function()
        samples.append((time.perf_counter() - start) / rounds)
    return statistics.median(samples)


def cel_expr_python() -> tuple[Callable[[str], object], Callable[[list[object]], object]]:
    from cel_expr_python import cel
    from cel_expr_python.ext import ext_optional, ext_strings

    env = cel.NewEnv(variables={"claims": cel.Type.Map(cel.Type.STRING, cel.Type.DYN)},
                     extensions=[ext_strings.ExtStrings(), ext_optional.ExtOptional()])

    def evaluate(programs: list[Any]) -> object:
        activation = env.Activation({"claims": CLAIMS})
        return [program.eval(activation).value() for program in programs]

    return env.compile, evaluate


def common_expression_language() -> tuple[Callable[[str], object],
                                          Callable[[list[object]], object]]:
    import cel

    def evaluate(programs: list[Any]) -> object:
        context = {"claims": CLAIMS}
        return [program.execute(context) for program in programs]

    return cel.compile, evaluate


def cel_python() -> tuple[Callable[[str], object], Callable[[list[object]], object]]:
    import celpy

    env = celpy.Environment()

    def compile_(text: str) -> object:
        return env.program(env.compile(text))

    def evaluate(programs: list[Any]) -> object:
        activation = {"claims": celpy.json_to_cel(CLAIMS)}
        return [program.evaluate(activation) for program in programs]

    return compile_, evaluate


CANDIDATES = {
    "cel-expr-python": cel_expr_python,
    "common-expression-language": common_expression_language,
    "cel-python": cel_python,
}


def measure(name: str) -> dict[str, Any]:
    try:
        compile_, evaluate = CANDIDATES[name]()
    except ImportError as error:
        return {"candidate": name, "error": f"not installed ({error})"}
    results: dict[str, Any] = {"candidate": name}
    compiled, supported = [], []
    for rule in RULES:
        try:
            compiled.append(compile_(rule))
            supported.append(rule)
        except Exception as error:  # noqa: BLE001 - a candidate that cannot compile a rule
            results.setdefault("unsupported", []).append(f"{rule}: {str(error)[:80]}")
    results["compile_us_per_rule"] = round(
        per_call(lambda: [compile_(rule) for rule in supported], rounds=100)
        / len(supported) * 1e6, 1)
    try:
        results["values"] = evaluate(compiled)
    except Exception as error:  # noqa: BLE001
        results["eval_error"] = str(error)
        return results
    results[f"eval_us_{len(compiled)}_rules"] = round(per_call(lambda: evaluate(compiled)) * 1e6, 2)
    return results


def main() -> None:
    for name in CANDIDATES:
        print(measure(name))


if __name__ == "__main__":
    main()
