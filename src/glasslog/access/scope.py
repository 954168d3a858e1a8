"""What a principal's roles let it see: scope as a query, field rules as a view.

Pure functions over the policy and the query AST, used by the enforcement point
(:mod:`glasslog.access.enforce`), so that no read path builds SQL or filters events on
its own:

* :func:`scope_node` turns a role's scope (services, actions, categories,
  environments, ``max_age``, ``query``) into a query node that is ANDed into every
  read; with several roles, an event is visible when any role's scope includes it.
* :func:`restrict` rewrites a query so that a term on a field can only match events
  in whose role's view that field is in clear: a role that masks ``/actor/email``
  finds nothing with ``actor.email:x@y``, though another role of the same principal
  that shows it may.
* :func:`view` applies the field rules to one event: a field is in clear when a role
  whose scope includes the event shows it, masked (its commitment) when such a role
  masks it, and left out when every such role hides it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Final

from glasslog.access.policy import Role
from glasslog.ledger.commit import COMMIT_KEY, Path, commitment, is_erased
from glasslog.query.language import (
    And,
    Compare,
    Everything,
    Has,
    Match,
    Node,
    Not,
    Or,
    Text,
    parse,
)

__all__ = [
    "NOTHING",
    "FieldRule",
    "restrict",
    "rule_of",
    "scope_node",
    "unsafe",
    "view",
    "widen",
]

NOTHING: Final[Node] = Not(Everything())
"""Matches no event: the scope of a role that lists no service or action."""

FieldRule = str
"""``"clear"``, ``"mask"`` or ``"hide"``."""


def all_of(nodes: Iterable[Node]) -> Node:
    """The AND of ``nodes``, flattened as the parser builds it (Everything drops out)."""
    flat: list[Node] = []
    for node in nodes:
        if isinstance(node, Everything):
            continue
        if node == NOTHING:
            return NOTHING
        flat.extend(node.nodes if isinstance(node, And) else (node,))
    if not flat:
        return Everything()
    return flat[0] if len(flat) == 1 else And(tuple(flat))


def any_of(nodes: Iterable[Node]) -> Node:
    """The OR of ``nodes``, flattened (NOTHING drops out, Everything wins)."""
    flat: list[Node] = []
    for node in nodes:
        if isinstance(node, Everything):
            return Everything()
        if node == NOTHING:
            continue
        flat.extend(node.nodes if isinstance(node, Or) else (node,))
    if not flat:
        return NOTHING
    return flat[0] if len(flat) == 1 else Or(tuple(flat))


def _globs(field: str, globs: Sequence[str] | None) -> Node:
    if globs is None or "*" in globs:
        return Everything()
    return any_of(Match(field, glob, wildcard="*" in glob) for glob in globs)


def scope_node(role: Role, *, now: datetime) -> Node:
    """The events ``role`` may see, as a query node (``now`` anchors ``max_age``)."""
    parts: list[Node] = [
        _globs("service", role.services),
        _globs("action", role.actions),
        _globs("category", role.categories),
        _globs("environment", role.environments),
    ]
    if not role.services or not role.actions:
        return NOTHING
    if role.max_age is not None:
        parts.append(Compare("time", ">=", now - role.max_age))
    if role.query:
        parts.append(parse(role.query, now=now))
    return all_of(parts)


def _field_path(field: str) -> Path:
    return tuple(field.split("."))


def rule_of(role: Role, path: Path) -> FieldRule:
    """How ``role`` shows the field at ``path`` (a query field's dotted path, split).

    A rule on a field covers what is inside it (``/metadata`` masks every metadata
    key; ``/metadata/db`` masks ``metadata.db.table``).
    """
    for pointer in role.hide:
        if path[: len(pointer)] == pointer:
            return "hide"
    for pointer in role.mask:
        if path[: len(pointer)] == pointer:
            return "mask"
    return "clear"


def _has_rules(role: Role) -> bool:
    return bool(role.mask or role.hide)


def restrict(node: Node, roles: Sequence[Role], scopes: Sequence[Node]) -> Node:
    """Rewrite ``node`` so that no term matches a value its event's roles do not show.

    A term on a field becomes "the term, within the scope of a role that shows the
    field in clear" (the OR over such roles); free text, which may match any field,
    is allowed only within the scope of roles that mask and hide nothing. Negation
    and the connectives are kept, so ``-actor.email:x`` holds for an event whose
    email the role cannot see (in its view the email is not x).
    """
    if isinstance(node, (Match, Compare, Has)):
        path = _field_path(node.field)
        allowed = [s for r, s in zip(roles, scopes, strict=True) if rule_of(r, path) == "clear"]
        if len(allowed) == len(roles):
            return node
        return all_of((node, any_of(allowed)))
    if isinstance(node, Text):
        allowed = [s for r, s in zip(roles, scopes, strict=True) if not _has_rules(r)]
        if len(allowed) == len(roles):
            return node
        return all_of((node, any_of(allowed)))
    if isinstance(node, Not):
        inner = restrict(node.node, roles, scopes)
        if isinstance(inner, Everything):
            return NOTHING
        return Not(inner) if not isinstance(inner, Not) else inner.node
    if isinstance(node, And):
        return all_of(restrict(n, roles, scopes) for n in node.nodes)
    if isinstance(node, Or):
        return any_of(restrict(n, roles, scopes) for n in node.nodes)
    return node


def unsafe(node: Node, roles: Sequence[Role]) -> bool:
    """Whether a term's truth in some role's view may differ from its truth on the event."""
    if isinstance(node, Text):
        return any(_has_rules(r) for r in roles)
    if isinstance(node, (Match, Compare, Has)):
        path = _field_path(node.field)
        return any(rule_of(r, path) != "clear" for r in roles)
    return False


def widen(node: Node, roles: Sequence[Role], *, positive: bool = True) -> Node:
    """A query that finds at least every event whose view matches ``node`` (for SQL).

    The store evaluates queries on the stored values; the principal's view lacks the
    masked ones. A term on such a value is kept where it can only narrow the search to
    more than the view would find (a positive position: the view never matches a
    value it lacks) and dropped where it would exclude events the view keeps (under a
    negation: ``-actor.email:x`` must not hide the events whose unseen email is x).
    The results are then matched against each event's view, exactly.
    """
    if isinstance(node, Not):
        inner = widen(node.node, roles, positive=not positive)
        if isinstance(inner, Everything):
            return NOTHING
        if inner == NOTHING:
            return Everything()
        return Not(inner)
    if isinstance(node, And):
        return all_of(widen(n, roles, positive=positive) for n in node.nodes)
    if isinstance(node, Or):
        return any_of(widen(n, roles, positive=positive) for n in node.nodes)
    if unsafe(node, roles):
        return node if positive else NOTHING
    return node


def view(
    event: dict[str, Any],
    rules: Sequence[Role],
    committed: dict[Path, bytes],
    memo: dict[tuple[tuple[str, ...], Path], bool | str] | None = None,
) -> tuple[dict[str, Any], dict[Path, str], dict[Path, str | None]]:
    """The event as the roles ``rules`` (those whose scope includes it) show it.

    ``memo`` (optional, for a page of events): each (rules, path)'s decision, kept
    across calls, because the same few paths are decided for every event of a page.
    ``committed`` maps each committed path of the stored event to its salt. Returns
    the view, the masked paths with their commitment, and the hidden paths with their
    commitment (evidence puts those back to rebuild the leaf). A field a rule names
    that this event did not commit (ingested before ``[ledger] commit`` named it) has
    no commitment to show: it is left out, and its hidden entry is None.
    """
    out: dict[str, Any] = dict(event)
    masked: dict[Path, str] = {}
    hidden: dict[Path, str | None] = {}
    names = tuple(role.name for role in rules)
    decided = {} if memo is None else memo
    for path in _candidates(event, rules, committed):
        rule = decided.get((names, path))
        if rule is None:
            shown = [rule_of(role, path) for role in rules]
            rule = decided[names, path] = (
                False if "clear" in shown else "mask" if "mask" in shown else "hide"
            )
        if rule is False:
            continue
        parent: dict[str, Any] = out
        if len(path) == 2:
            inner = out.get(path[0])
            if not isinstance(inner, dict) or path[1] not in inner:
                continue
            parent = out[path[0]] = dict(inner)
        elif path[0] not in parent:
            continue
        value = parent[path[-1]]
        if is_erased(value):
            # Erased for good: the marker shows no value, so masking keeps it; hiding
            # drops it (evidence puts its stored commitment back, access.enforce).
            if rule != "mask":
                del parent[path[-1]]
                hidden[path] = None
            continue
        salt = committed.get(path)
        sealed: str | None
        if isinstance(value, dict) and set(value) == {COMMIT_KEY}:
            sealed = value[COMMIT_KEY]  # erased or masked already: the commitment itself
        elif salt is not None:
            sealed = commitment(salt, value)
        else:
            sealed = None
        if rule == "mask" and sealed is not None:
            parent[path[-1]] = {COMMIT_KEY: sealed}
            masked[path] = sealed
        else:
            del parent[path[-1]]
            hidden[path] = sealed
    return out, masked, hidden


def _candidates(
    event: dict[str, Any], rules: Sequence[Role], committed: dict[Path, bytes]
) -> list[Path]:
    """Every path a rule may apply to: the committed ones, and those the rules name."""
    paths: dict[Path, None] = dict.fromkeys(committed)
    for role in rules:
        for pointer in (*role.mask, *role.hide):
            if len(pointer) == 1 and isinstance(event.get(pointer[0]), dict):
                paths.update(dict.fromkeys((pointer[0], key) for key in event[pointer[0]]))
            else:
                paths[pointer] = None
    return list(paths)


def services_node(services: Sequence[Sequence[str]]) -> Node:
    """Events whose service matches one of the globs of any of ``services`` (the lists of
    several roles); an empty list matches nothing."""
    return any_of(_globs("service", globs) for globs in services if globs)
