"""glasslog: audit logs that anyone can prove were not altered.

Events are validated, scrubbed of secrets, committed into an RFC 9162 Merkle tree
and covered by signed C2SP checkpoints. See docs/architecture.md.
"""

__version__ = "0.1.0"


TYPE_CHECKING = False  # not typing's: `import glasslog` imports nothing at all
if TYPE_CHECKING:
    from glasslog.client import context as context


def __getattr__(name: str) -> object:
    """``glasslog.context``, loaded on first use so that ``import glasslog`` stays light."""
    if name == "context":
        from glasslog.client import context  # noqa: PLC0415 - keeps `import glasslog` light

        return context
    raise AttributeError(f"module 'glasslog' has no attribute {name!r}")
