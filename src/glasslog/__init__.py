"""glasslog: audit logs that anyone can prove were not altered.

Events are validated, scrubbed of secrets, committed into an RFC 9162 Merkle tree
and covered by signed C2SP checkpoints. See docs/architecture.md.
"""

__version__ = "0.1.0"
