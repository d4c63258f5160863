"""keadm: the one command for KubeEdge-in-Python. The CLI only: it parses flags, prints, and calls library code."""

__version__ = "0.1.0"
# The upstream KubeEdge release whose wire protocol, configs and keadm flags we follow.
KUBEEDGE_COMPAT_VERSION = "v1.23.0"
