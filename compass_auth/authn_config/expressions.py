"""CEL for AuthenticationConfiguration expressions, behind a small typed adapter.

The only module that imports the CEL implementation: ``cel-expr-python`` (the CEL project's own
C++ runtime, cel-cpp, with Python bindings), installed by the ``cel`` extra
(``pip install 'compass-auth[cel]'``). It was chosen by measurement against
``common-expression-language`` and ``cel-python`` (benchmarks/cel_candidates.py,
docs/authentication-config.md#cel): it is the fastest, the only one with a type checker (so "must
evaluate to bool" is found at load, as kube-apiserver does) and the only one with the optional
field syntax ``claims.?x``; it has no dependencies of its own.

The environments mirror kube-apiserver's (``staging/src/k8s.io/apiserver/pkg/authentication/cel/
compile.go``): ``claims`` is a ``map(string, dyn)`` for claim rules and mappings; ``user`` (for
``userValidationRules``) is typed here as ``map(string, dyn)`` too, where Kubernetes declares an
object type with the fields ``username``, ``uid``, ``groups`` and ``extra`` (cel-expr-python needs a
protobuf message for an object type): a misspelt field of ``user`` is found when a rule runs, not
at load. Libraries: the CEL standard functions, the strings extension (version 2, as Kubernetes
1.29+) and optional types. Kubernetes' own libraries (URLs, regex ``find``, lists, quantity, IP,
CIDR, format, semver, two-variable comprehensions) are not available: an expression that
uses one fails at load with the checker's "undeclared reference" error. The sets extension is
provided here (three small Python functions, ``_SETS``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: What to install; named in the error a file with expressions gets without it.
EXTRA = "cel"
INSTALL_HINT = f"pip install 'compass-auth[{EXTRA}]'"
#: The CEL runtime's integers are 64-bit; JSON numbers outside that range become doubles, as
#: Kubernetes' unstructured JSON decoding does with them.
_INT64 = (-(2**63), 2**63 - 1)


class CelUnavailable(Exception):
    """The ``cel`` extra is not installed."""

    def __init__(self) -> None:
        super().__init__(f"CEL expressions need the '{EXTRA}' extra: {INSTALL_HINT}")


class CompileError(Exception):
    """The expression does not compile, or its type is not the one required."""


class EvaluationError(Exception):
    """The expression failed at run time (a missing key, no matching overload, ...)."""


@dataclass(frozen=True, slots=True)
class _Runtime:
    cel: Any
    claims_env: Any
    user_env: Any


def _member(item: Any, items: list[Any]) -> bool:
    """CEL equality for membership: numbers compare across int/double, a bool is never a
    number (Python's ``True == 1`` must not leak in)."""
    return any(type(item) is type(other) or ((
        not isinstance(item, bool) and not isinstance(other, bool)
        and isinstance(item, int | float) and isinstance(other, int | float))
        and item == other) for other in items)


#: cel-go's sets extension (``ext.Sets``, in Kubernetes' base environment since 1.29), which
#: cel-expr-python lacks: ``sets.contains``, ``sets.equivalent``, ``sets.intersects`` over lists.
_SETS = {
    "contains": lambda a, b: all(_member(item, a) for item in b),
    "equivalent": lambda a, b: all(_member(item, b) for item in a)
    and all(_member(item, a) for item in b),
    "intersects": lambda a, b: any(_member(item, a) for item in b),
}


@functools.cache
def _runtime() -> _Runtime:
    try:
        from cel_expr_python import cel
        from cel_expr_python.ext import ext_optional, ext_strings
    except ImportError:
        raise CelUnavailable() from None

    any_list = cel.Type.List(cel.Type.DYN)
    sets = cel.CelExtension("sets", [
        cel.FunctionDecl(f"sets.{name}", [cel.Overload(f"sets_{name}_list_list", cel.Type.BOOL,
                                                       [any_list, any_list], impl=function)])
        for name, function in _SETS.items()])

    def environment(variable: str) -> Any:
        return cel.NewEnv(variables={variable: cel.Type.Map(cel.Type.STRING, cel.Type.DYN)},
                          extensions=[ext_strings.ExtStrings(2), ext_optional.ExtOptional(), sets])

    return _Runtime(cel, environment("claims"), environment("user"))


def available() -> bool:
    """Whether the ``cel`` extra is installed."""
    try:
        _runtime()
    except CelUnavailable:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Program:
    """One compiled expression. ``variable`` is ``claims`` or ``user``."""

    source: str
    variable: str
    compiled: Any
    #: cel.Type.ERROR, kept here so that an evaluation makes no lookup (the hot path).
    error_type: Any
    #: Type-checked as bool: any other result is an error's text (one call saved per rule).
    boolean: bool = False

    def evaluate(self, activation: Activation) -> Any:
        """The expression's value as plain Python (bool, str, int, float, None, list, dict).
        Raises ``EvaluationError``."""
        result = self.compiled.eval(activation.handle)
        if self.boolean:
            value = result.plain_value()
            if value is True or value is False:
                return value
            text = str(value)
        elif result.type() != self.error_type:
            return result.plain_value()
        else:
            text = str(result.value())
        if _OUT_OF_RANGE in text and not activation.converted:
            raise NeedsConversion()
        raise EvaluationError(_runtime_error(text))


class NeedsConversion(Exception):
    """A claim holds an integer beyond 64 bits: build the activation again, converted."""


#: cel-cpp's complaint about a Python int it cannot hold.
_OUT_OF_RANGE = "out of range for"


@dataclass(frozen=True, slots=True)
class Activation:
    """The variable bound once for the several expressions evaluated on one token."""

    handle: Any
    converted: bool = False


def claims_activation(claims: Mapping[str, Any], *, converted: bool = False) -> Activation:
    """``claims`` bound as is (the common case: no copy); ``converted``: with integers beyond
    64 bits made doubles first (done only after an evaluation met one)."""
    runtime = _runtime()
    value = _json_safe(claims) if converted else claims
    return Activation(runtime.claims_env.Activation({"claims": value}), converted)


def user_activation(user: Mapping[str, Any]) -> Activation:
    runtime = _runtime()
    return Activation(runtime.user_env.Activation({"user": dict(user)}), converted=True)


def compile_expression(source: str, variable: str, *, boolean: bool) -> Program:
    """Compile ``source`` with ``variable`` (``claims`` or ``user``) declared. ``boolean``: the
    checked type must be bool (validation rules); otherwise any type (mappings are checked when
    they run, as upstream: ``ClaimMappingExpression.ReturnTypes`` is ``AnyType``). Raises
    ``CelUnavailable`` or ``CompileError`` (text as kube-apiserver words it)."""
    runtime = _runtime()
    env = runtime.claims_env if variable == "claims" else runtime.user_env
    try:
        compiled = env.compile(source)
    except RuntimeError as error:
        raise CompileError(f"compilation failed: {_issues(str(error))}") from None
    if boolean and compiled.return_type() != runtime.cel.Type.BOOL:
        raise CompileError("must evaluate to bool")
    return Program(source, variable, compiled, runtime.cel.Type.ERROR, boolean)


def _issues(text: str) -> str:
    """cel-cpp's status text -> the issues text cel-go prints (``ERROR: <input>:1:1: ...``)."""
    text = text.removeprefix("INVALID_ARGUMENT: ")
    return text.removesuffix(" [INVALID_ARGUMENT]")


#: cel-cpp's run-time error texts -> cel-go's, where users see them (the 401's logged detail).
_RUNTIME_ERRORS = (
    (re.compile(r'^NOT_FOUND: Key not found in map : "(?P<key>.*)"$', re.DOTALL),
     "no such key: {key}"),
    (re.compile(r"^UNKNOWN: No matching overloads found : (?P<name>.*)$", re.DOTALL),
     "no such overload: {name}"),
)


def _runtime_error(text: str) -> str:
    for pattern, replacement in _RUNTIME_ERRORS:
        match = pattern.match(text)
        if match:
            return replacement.format(**match.groupdict())
    return text


def _json_safe(value: Any) -> Any:
    """Claims as the CEL runtime accepts them: integers outside 64 bits become floats. Returns
    ``value`` itself when nothing needs changing (the common case, no copy)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if _INT64[0] <= value <= _INT64[1] else float(value)
    if isinstance(value, Mapping):
        items = {key: _json_safe(item) for key, item in value.items()}
        return value if all(items[key] is value[key] for key in items) else items
    if isinstance(value, list | tuple):
        converted = [_json_safe(item) for item in value]
        return value if isinstance(value, list) and all(
            new is old for new, old in zip(converted, value, strict=True)) else converted
    return value
