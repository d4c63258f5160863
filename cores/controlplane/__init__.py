"""The embedded control plane: a Kubernetes-compatible API server on SQLite, for machines with no cluster.

Its own process (``keadm run controlplane``), its own CA, its own data dir. CloudCore reaches it
only through a kubeconfig, exactly as it would reach a real cluster.
"""
