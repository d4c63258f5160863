"""Label and field selectors, parsed and matched exactly as kube-apiserver does.

Owns the `?labelSelector=` / `?fieldSelector=` grammar of a list or watch request, the
metav1.LabelSelector objects in Deployments, ReplicaSets and Services, the table of which
fields each resource lets a client select on, and the cheap extraction of those field values
(the server stores them beside each object so it can filter without decoding the whole JSON).

Everything here is pure: strings and plain JSON dicts in, values or `SelectorError` out. Error
texts follow k8s.io/apimachinery (`pkg/labels/selector.go`, `pkg/fields/selector.go`, the field
label conversion functions of `pkg/apis/core/v1/conversion.go`), because kubectl prints them
verbatim after "Error from server (BadRequest):".
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# --- Name and value rules shared with validation.py (apimachinery/pkg/util/validation) ---------

_QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QUALIFIED_NAME_ERR = (
    "must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_LABEL_VALUE_FMT = "(" + _QUALIFIED_NAME_FMT + ")?"
_LABEL_VALUE_ERR = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL_ERR = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + "(\\." + DNS1123_LABEL_FMT + ")*"
DNS1123_SUBDOMAIN_ERR = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character"
)

_QUALIFIED_NAME_RE = re.compile(_QUALIFIED_NAME_FMT)
_LABEL_VALUE_RE = re.compile(_LABEL_VALUE_FMT)
_DNS1123_LABEL_RE = re.compile(DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN_RE = re.compile(DNS1123_SUBDOMAIN_FMT)


def regex_error(message: str, fmt: str, *examples: str) -> str:
    """apimachinery's RegexError, double space included.

    Go builds the examples as `'a', ` + ` or ` + `'b', `, which is why real messages read
    "(e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '...')".
    """
    if not examples:
        return f"{message} (regex used for validation is '{fmt}')"
    listed = " or ".join(f"'{example}', " for example in examples)
    return f"{message} (e.g. {listed}regex used for validation is '{fmt}')"


def max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def is_dns1123_subdomain(value: str) -> list[str]:
    """Messages for a value that is not an RFC 1123 subdomain (empty list when valid)."""
    errors = []
    if len(value) > 253:
        errors.append(max_len_error(253))
    if not _DNS1123_SUBDOMAIN_RE.fullmatch(value):
        errors.append(regex_error(DNS1123_SUBDOMAIN_ERR, DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errors


def is_dns1123_label(value: str) -> list[str]:
    """Messages for a value that is not an RFC 1123 label (empty list when valid)."""
    errors = []
    if len(value) > 63:
        errors.append(max_len_error(63))
    if not _DNS1123_LABEL_RE.fullmatch(value):
        if _DNS1123_SUBDOMAIN_RE.fullmatch(value):
            # "It was a valid subdomain and not a valid label. Since we already checked length,
            # it must be dots." (IsDNS1123Label)
            errors.append("must not contain dots")
        else:
            errors.append(regex_error(DNS1123_LABEL_ERR, DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errors


def is_qualified_name(value: str) -> list[str]:
    """Messages for a value that is not a qualified name (`[prefix/]name`), as IsQualifiedName."""
    errors: list[str] = []
    parts = value.split("/")
    if len(parts) > 2:
        return [
            "a qualified name "
            + regex_error(_QUALIFIED_NAME_ERR, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            errors.extend("prefix part " + message for message in is_dns1123_subdomain(prefix))
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > 63:
        errors.append("name part " + max_len_error(63))
    if not _QUALIFIED_NAME_RE.fullmatch(name):
        errors.append(
            "name part " + regex_error(_QUALIFIED_NAME_ERR, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
        )
    return errors


def is_valid_label_value(value: str) -> list[str]:
    """Messages for a value that is not a label value (≤ 63 chars, may be empty)."""
    errors = []
    if len(value) > 63:
        errors.append(max_len_error(63))
    if not _LABEL_VALUE_RE.fullmatch(value):
        errors.append(regex_error(_LABEL_VALUE_ERR, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errors


def go_quote(text: str) -> str:
    """Go's %q / strconv.Quote: printable runes kept, the rest escaped."""
    named = {'"': '\\"', "\\": "\\\\", "\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
             "\t": "\\t", "\v": "\\v"}
    out = []
    for char in text:
        if char in named:
            out.append(named[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


class SelectorError(ValueError):
    """A selector the API server would refuse with 400 Bad Request; str() is its message."""


# --- Label selectors ----------------------------------------------------------------------------

# Operators keep apimachinery's selection.Operator spellings.
EQUALS, DOUBLE_EQUALS, NOT_EQUALS = "=", "==", "!="
IN, NOT_IN, EXISTS, DOES_NOT_EXIST = "in", "notin", "exists", "!"
GREATER_THAN, LESS_THAN = "gt", "lt"

_INT64_RE = re.compile(r"[+-]?[0-9]+")


def _parse_int64(text: str) -> int | None:
    """strconv.ParseInt(text, 10, 64), or None when Go would fail."""
    if not _INT64_RE.fullmatch(text):
        return None
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None


@dataclass(frozen=True)
class Requirement:
    """One `key op values` term; values are sorted and unique when parsed from text."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator in (EQUALS, DOUBLE_EQUALS, IN):
            return present and labels[self.key] in self.values
        if self.operator in (NOT_EQUALS, NOT_IN):
            # "NotIn / NotEquals: the label is absent, or its value is not in the set."
            return not present or labels[self.key] not in self.values
        if self.operator == EXISTS:
            return present
        if self.operator == DOES_NOT_EXIST:
            return not present
        return present and self._compare(labels[self.key])

    def _compare(self, label_value: str) -> bool:
        # Gt/Lt: both sides must parse as int64, otherwise the requirement does not match.
        have = _parse_int64(label_value)
        want = _parse_int64(self.values[0]) if len(self.values) == 1 else None
        if have is None or want is None:
            return False
        return have > want if self.operator == GREATER_THAN else have < want

    def __str__(self) -> str:
        head = ("!" if self.operator == DOES_NOT_EXIST else "") + self.key
        if self.operator in (EXISTS, DOES_NOT_EXIST):
            return head
        joined = ",".join(sorted(self.values)) if len(self.values) > 1 else "".join(self.values)
        if self.operator in (IN, NOT_IN):
            return f"{head} {self.operator} ({joined})"
        symbol = {GREATER_THAN: ">", LESS_THAN: "<"}.get(self.operator, self.operator)
        return f"{head}{symbol}{joined}"


@dataclass(frozen=True)
class LabelSelector:
    """A conjunction of requirements. No requirements matches everything; `nothing` matches none.

    `nothing` stands for a nil metav1.LabelSelector (LabelSelectorAsSelector returns
    labels.Nothing()), e.g. a Service without `spec.selector`.
    """

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.nothing:
            return False
        present = labels or {}
        return all(requirement.matches(present) for requirement in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.nothing and not self.requirements

    def __str__(self) -> str:
        return ",".join(str(requirement) for requirement in self.requirements)


def _field_invalid(path: str, value: Any, detail: str) -> str:
    return f"{path}: Invalid value: {_go_repr(value)}: {detail}"


def _go_repr(value: Any) -> str:
    if isinstance(value, str):
        return go_quote(value)
    return "[]string{" + ", ".join(go_quote(item) for item in value) + "}"


def _aggregate(messages: list[str]) -> str:
    """utilerrors.Aggregate.Error(): duplicates dropped, brackets when more than one remains."""
    unique = list(dict.fromkeys(messages))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


def new_requirement(key: str, operator: str, values: Iterable[str]) -> Requirement:
    """labels.NewRequirement: validate and build one term, or raise SelectorError."""
    values = tuple(values)
    errors = []
    if is_qualified_name(key):
        errors.append(_field_invalid("key", key, "; ".join(is_qualified_name(key))))
    errors.extend(_operator_value_errors(operator, values))
    for index, value in enumerate(values):
        if is_valid_label_value(value):
            detail = "; ".join(is_valid_label_value(value))
            errors.append(_field_invalid(f"values[{index}][{key}]", value, detail))
    if errors:
        raise SelectorError(_aggregate(errors))
    return Requirement(key, operator, values)


def _operator_value_errors(operator: str, values: tuple[str, ...]) -> list[str]:
    if operator in (IN, NOT_IN) and not values:
        return [_field_invalid("values", values, "for 'in', 'notin' operators, values set can't be empty")]
    if operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS) and len(values) != 1:
        return [_field_invalid("values", values, "exact-match compatibility requires one single value")]
    if operator in (EXISTS, DOES_NOT_EXIST) and values:
        return [_field_invalid("values", values, "values set must be empty for exists and does not exist")]
    if operator in (GREATER_THAN, LESS_THAN):
        errors = []
        if len(values) != 1:
            errors.append(_field_invalid("values", values, "for 'Gt', 'Lt' operators, exactly one value is required"))
        for index, value in enumerate(values):
            if _parse_int64(value) is None:
                errors.append(_field_invalid(
                    f"values[{index}]", value, "for 'Gt', 'Lt' operators, the value must be an integer"))
        return errors
    if operator not in (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, EXISTS, DOES_NOT_EXIST):
        supported = ", ".join(go_quote(op) for op in (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS,
                                                       EXISTS, DOES_NOT_EXIST, GREATER_THAN, LESS_THAN))
        return [f"operator: Unsupported value: {go_quote(operator)}: supported values: {supported}"]
    return []


# Lexer tokens (labels.Token); a token is (kind, literal).
_IDENT, _END, _COMMA, _OPEN, _CLOSE = "ident", "end", ",", "(", ")"
_SYMBOLS = ("!=", "==", "=", "!", "(", ")", ",", ">", "<")
_SPECIAL_CHARS = frozenset("=!(),><")
_WHITESPACE = frozenset(" \t\r\n")
_BINARY_OPERATORS = "in, notin, =, ==, !=, gt, lt"


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens = []
    position = 0
    while position < len(text):
        char = text[position]
        if char in _WHITESPACE:
            position += 1
        elif char in _SPECIAL_CHARS:
            symbol = next(s for s in _SYMBOLS if text.startswith(s, position))
            tokens.append((symbol, symbol))
            position += len(symbol)
        else:
            end = position
            while end < len(text) and text[end] not in _WHITESPACE and text[end] not in _SPECIAL_CHARS:
                end += 1
            word = text[position:end]
            # "in" and "notin" are keywords only where an operator is expected (see _Parser).
            tokens.append((word if word in (IN, NOT_IN) else _IDENT, word))
            position = end
    tokens.append((_END, ""))
    return tokens


class _Parser:
    """A port of labels.Parser: a cursor over tokens with the Values/KeyAndOperator contexts."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.position = 0

    def lookahead(self, as_values: bool = True) -> tuple[str, str]:
        kind, literal = self.tokens[self.position]
        # In the Values context the keywords "in"/"notin" are plain identifiers.
        if as_values and kind in (IN, NOT_IN):
            kind = _IDENT
        return kind, literal

    def consume(self, as_values: bool = True) -> tuple[str, str]:
        token = self.lookahead(as_values)
        self.position = min(self.position + 1, len(self.tokens) - 1)
        return token

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            kind, literal = self.lookahead()
            if kind == _END:
                return requirements
            if kind not in (_IDENT, "!"):
                raise SelectorError(f"found '{literal}', expected: !, identifier, or 'end of string'")
            try:
                requirements.append(self.parse_requirement())
            except SelectorError as error:
                raise SelectorError(f"unable to parse requirement: {error}") from None
            kind, literal = self.consume()
            if kind == _END:
                return requirements
            if kind != _COMMA:
                raise SelectorError(f"found '{literal}', expected: ',' or 'end of string'")
            kind, literal = self.lookahead()
            if kind not in (_IDENT, "!"):
                raise SelectorError(f"found '{literal}', expected: identifier after ','")

    def parse_requirement(self) -> Requirement:
        key, operator = self.parse_key_and_infer_operator()
        if operator in (EXISTS, DOES_NOT_EXIST):
            return new_requirement(key, operator, ())
        operator = self.parse_operator()
        values = self.parse_values() if operator in (IN, NOT_IN) else self.parse_exact_value()
        return new_requirement(key, operator, sorted(values))

    def parse_key_and_infer_operator(self) -> tuple[str, str]:
        operator = ""
        kind, literal = self.consume()
        if kind == "!":
            operator = DOES_NOT_EXIST
            kind, literal = self.consume()
        if kind != _IDENT:
            raise SelectorError(f"found '{literal}', expected: identifier")
        if is_qualified_name(literal):
            # The parser validates with a nil field path, hence Go's "<nil>" in real messages.
            raise SelectorError(_field_invalid("<nil>", literal, "; ".join(is_qualified_name(literal))))
        if self.lookahead()[0] in (_END, _COMMA) and operator != DOES_NOT_EXIST:
            operator = EXISTS
        return literal, operator

    def parse_operator(self) -> str:
        kind, literal = self.consume(as_values=False)
        operators = {IN: IN, NOT_IN: NOT_IN, "=": EQUALS, "==": DOUBLE_EQUALS, "!=": NOT_EQUALS,
                     ">": GREATER_THAN, "<": LESS_THAN}
        if kind not in operators:
            raise SelectorError(f"found '{literal}', expected: {_BINARY_OPERATORS}")
        return operators[kind]

    def parse_values(self) -> set[str]:
        kind, literal = self.consume()
        if kind != _OPEN:
            raise SelectorError(f"found '{literal}' expected: '('")
        kind, literal = self.lookahead()
        if kind == _CLOSE:
            self.consume()
            return {""}
        if kind not in (_IDENT, _COMMA):
            raise SelectorError(f"found '{literal}', expected: ',', ')' or identifier")
        values = self.parse_identifiers_list()
        if self.consume()[0] != _CLOSE:
            raise SelectorError(f"found '{literal}', expected: ')'")
        return values

    def parse_identifiers_list(self) -> set[str]:
        values: set[str] = set()
        while True:
            kind, literal = self.consume()
            if kind == _IDENT:
                values.add(literal)
                next_kind, next_literal = self.lookahead()
                if next_kind == _CLOSE:
                    return values
                if next_kind != _COMMA:
                    raise SelectorError(f"found '{next_literal}', expected: ',' or ')'")
            elif kind == _COMMA:
                # "(," ",)" and ",," each stand for an empty value.
                if not values:
                    values.add("")
                next_kind = self.lookahead()[0]
                if next_kind == _CLOSE:
                    values.add("")
                    return values
                if next_kind == _COMMA:
                    self.consume()
                    values.add("")
            else:
                raise SelectorError(f"found '{literal}', expected: ',', or identifier")

    def parse_exact_value(self) -> set[str]:
        if self.lookahead()[0] in (_END, _COMMA):
            return {""}
        kind, literal = self.consume()
        if kind != _IDENT:
            raise SelectorError(f"found '{literal}', expected: identifier")
        return {literal}


def parse_label_selector(text: str) -> LabelSelector:
    """labels.Parse: the `?labelSelector=` grammar. Empty text selects everything."""
    requirements = _Parser(text).parse()
    # "sort to grant determistic parsing" (labels.Parse sorts by key).
    return LabelSelector(tuple(sorted(requirements, key=lambda requirement: requirement.key)))


_EXPRESSION_OPERATORS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}


def label_selector_from_dict(selector: Mapping[str, Any] | None) -> LabelSelector:
    """metav1.LabelSelectorAsSelector: None selects nothing, `{}` selects everything."""
    if selector is None:
        return LabelSelector(nothing=True)
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    requirements = [new_requirement(key, EQUALS, (value,)) for key, value in match_labels.items()]
    for expression in expressions:
        operator = expression.get("operator", "")
        if operator not in _EXPRESSION_OPERATORS:
            raise SelectorError(f"{go_quote(str(operator))} is not a valid label selector operator")
        values = tuple(expression.get("values") or ())
        requirements.append(new_requirement(expression.get("key", ""), _EXPRESSION_OPERATORS[operator], values))
    return LabelSelector(tuple(sorted(requirements, key=lambda requirement: requirement.key)))


def label_selector_from_set(labels: Mapping[str, str] | None) -> LabelSelector:
    """labels.SelectorFromSet: equality on every pair (a Service's `spec.selector` map)."""
    pairs = sorted((labels or {}).items())
    return LabelSelector(tuple(Requirement(key, EQUALS, (value,)) for key, value in pairs))


# --- Field selectors ----------------------------------------------------------------------------

DEFAULT_FIELD_SELECTORS: tuple[str, ...] = ("metadata.name", "metadata.namespace")

# What each resource's field label conversion function accepts (core/v1 conversion.go). Nodes and
# namespaces really do accept only metadata.name of the metadata pair.
FIELD_SELECTORS: dict[str, tuple[str, ...]] = {
    "pods": ("metadata.name", "metadata.namespace", "spec.nodeName", "spec.restartPolicy",
             "spec.schedulerName", "spec.serviceAccountName", "spec.hostNetwork", "status.phase",
             "status.podIP", "status.podIPs", "status.nominatedNodeName"),
    "nodes": ("metadata.name", "spec.unschedulable"),
    "events": ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
               "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
               "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type",
               "metadata.namespace", "metadata.name"),
    "namespaces": ("status.phase", "metadata.name"),
    "secrets": ("type", "metadata.namespace", "metadata.name"),
    "services": ("metadata.namespace", "metadata.name", "spec.clusterIP", "spec.type"),
    "replicationcontrollers": ("metadata.name", "metadata.namespace", "status.replicas"),
    "configmaps": DEFAULT_FIELD_SELECTORS,
    "serviceaccounts": DEFAULT_FIELD_SELECTORS,
    "endpoints": DEFAULT_FIELD_SELECTORS,
    "leases": DEFAULT_FIELD_SELECTORS,
    "deployments": DEFAULT_FIELD_SELECTORS,
    "replicasets": DEFAULT_FIELD_SELECTORS,
    "default": DEFAULT_FIELD_SELECTORS,
}

# "This is for backwards compatibility with old v1 clients which send spec.host" (pods).
_FIELD_ALIASES = {"spec.host": "spec.nodeName"}


@dataclass(frozen=True)
class FieldTerm:
    field: str
    value: str
    negated: bool = False

    def matches(self, fields: Mapping[str, str]) -> bool:
        return (fields.get(self.field, "") == self.value) != self.negated

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")
        return f"{self.field}{'!=' if self.negated else '='}{escaped}"


@dataclass(frozen=True)
class FieldSelector:
    """A conjunction of `field=value` / `field!=value` terms; no terms matches everything."""

    terms: tuple[FieldTerm, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all(term.matches({term.field: object_field_value(obj, term.field)}) for term in self.terms)

    def matches_fields(self, fields: Mapping[str, str]) -> bool:
        """Match against precomputed `selector_fields()`; a missing field counts as ""."""
        return all(term.matches(fields) for term in self.terms)

    @property
    def empty(self) -> bool:
        return not self.terms

    def __str__(self) -> str:
        return ",".join(str(term) for term in self.terms)


def _split_unescaped(text: str, separator: str) -> list[str]:
    """Split on separators not preceded by a backslash escape (fields.splitTerms)."""
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _split_term(term: str) -> tuple[str, str, str] | None:
    # The first position where "!=", "==" or "=" starts wins, in that order of preference.
    for index in range(len(term)):
        for operator in ("!=", "==", "="):
            if term.startswith(operator, index):
                return term[:index], operator, term[index + len(operator):]
    return None


def _unescape_value(value: str) -> str:
    out, escaped = [], False
    for char in value:
        if escaped:
            if char not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{char}")
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in ",=":
            # Go prints the rune with %v, i.e. as its code point.
            raise SelectorError(f"invalid field selector: unescaped character in value: {ord(char)}")
        else:
            out.append(char)
    if escaped:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _unknown_field_message(field: str, allowed: tuple[str, ...]) -> str:
    if allowed == DEFAULT_FIELD_SELECTORS:
        # runtime.DefaultMetaV1FieldSelectorConversion, used for kinds without their own function.
        return f'{go_quote(field)} is not a known field selector: only "metadata.name", "metadata.namespace"'
    return f"field label not supported: {field}"


def parse_field_selector(text: str, allowed: Collection[str]) -> FieldSelector:
    """fields.ParseSelector plus the per-kind label conversion: raise SelectorError on bad input.

    Whitespace is not trimmed (neither does kube-apiserver). The unknown-field message is the
    default conversion's ("... is not a known field selector: only ...") when `allowed` is
    DEFAULT_FIELD_SELECTORS, else the kind-specific "field label not supported: <field>".
    """
    known = tuple(allowed)
    terms = []
    for part in sorted(_split_unescaped(text, ",")):
        if not part:
            continue
        split = _split_term(part)
        if split is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        field, operator, value = split
        terms.append(FieldTerm(field, _unescape_value(value), operator == "!="))
    return FieldSelector(tuple(_convert_field(term, known) for term in terms))


def _convert_field(term: FieldTerm, allowed: tuple[str, ...]) -> FieldTerm:
    if term.field in allowed:
        return term
    alias = _FIELD_ALIASES.get(term.field)
    if alias in allowed:
        return FieldTerm(alias, term.value, term.negated)
    raise SelectorError(_unknown_field_message(term.field, allowed))


def allowed_fields(plural: str) -> tuple[str, ...]:
    return FIELD_SELECTORS.get(plural, DEFAULT_FIELD_SELECTORS)


def parse_field_selector_for(plural: str, text: str) -> FieldSelector:
    """parse_field_selector with the fields `plural` (e.g. "pods") allows."""
    return parse_field_selector(text, allowed_fields(plural))


def _render(value: Any) -> str:
    # Field sets hold strings: booleans are strconv.FormatBool'd, absent values are "".
    if value is None or isinstance(value, (dict, list)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The string value at a dotted path (`spec.nodeName`); missing or non-scalar gives ""."""
    current: Any = obj
    for step in path.split("."):
        if not isinstance(current, Mapping):
            return ""
        current = current.get(step)
    return _render(current)


def _pod_ip(obj: Mapping[str, Any]) -> str:
    # "status.podIP" is taken from status.podIPs[0] (pod strategy ToSelectableFields).
    status = obj.get("status")
    pod_ips = status.get("podIPs") if isinstance(status, Mapping) else None
    if isinstance(pod_ips, list) and pod_ips and isinstance(pod_ips[0], Mapping):
        return _render(pod_ips[0].get("ip"))
    return field_value(obj, "status.podIP")


def _event_source(obj: Mapping[str, Any]) -> str:
    # "source" is source.component, falling back to reportingController (JSON reportingComponent).
    return field_value(obj, "source.component") or field_value(obj, "reportingComponent")


def _special_field(obj: Mapping[str, Any], field: str) -> str | None:
    """Fields whose value is not simply the JSON at their dotted path.

    Each name belongs to a single kind (hostNetwork to pods, unschedulable to nodes, source to
    events), so no plural is needed to tell them apart.
    """
    raw_spec = obj.get("spec")
    spec: Mapping[str, Any] = raw_spec if isinstance(raw_spec, Mapping) else {}
    if field == "status.podIP":
        return _pod_ip(obj)
    if field == "status.podIPs":
        return ""  # accepted by the pod conversion but not part of the pod's field set
    if field == "spec.hostNetwork":
        return "true" if spec.get("hostNetwork") is True else "false"
    if field == "spec.unschedulable":
        return "true" if spec.get("unschedulable") is True else "false"
    if field == "source":
        return _event_source(obj)
    return None


def object_field_value(obj: Mapping[str, Any], field: str) -> str:
    """The value a selectable `field` has in `obj`, as the API server's field set holds it."""
    special = _special_field(obj, field)
    return field_value(obj, field) if special is None else special


def selector_fields(obj: Mapping[str, Any], plural: str) -> dict[str, str]:
    """The selectable field values of `obj`, as its resource's field set would hold them."""
    return {field: object_field_value(obj, field) for field in allowed_fields(plural)}
