"""Names from outside, validated as what they claim to be before any use (Kubernetes' rules).

A node name, a namespace or an object name that arrives in a header, a resource string, a URL
or a command-line flag ends up in API paths, file names and service names: it must be a DNS-1123
name first, never a path, a query or shell text.
"""

from __future__ import annotations

import re

# Used with fullmatch: "$" alone would also accept a trailing newline ("edge-1\n"), which would
# then travel into an API path or a file name.
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
LABEL_MAX, SUBDOMAIN_MAX = 63, 253


def is_dns1123_label(name: str) -> bool:
    """A DNS-1123 label (namespaces, container names): ``[a-z0-9]([-a-z0-9]*[a-z0-9])?``, at most 63."""
    return isinstance(name, str) and len(name) <= LABEL_MAX and bool(_LABEL.fullmatch(name))


def is_dns1123_subdomain(name: str) -> bool:
    """A DNS-1123 subdomain (node and most object names): labels joined by dots, at most 253."""
    return isinstance(name, str) and len(name) <= SUBDOMAIN_MAX and bool(_SUBDOMAIN.fullmatch(name))


def validate_node_name(name: str) -> str:
    """Why ``name`` cannot be a node's name ("" when it can)."""
    if is_dns1123_subdomain(name):
        return ""
    return (f"node name {name!r} is not a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', "
            f"starting and ending with a letter or digit, at most {SUBDOMAIN_MAX} characters")
