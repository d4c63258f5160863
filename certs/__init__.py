"""Certificates and tokens for KubeEdge: the CA, server and node certificates, CSRs, join tokens.

Library only, no network code. Importing ``certs.token`` stays cheap (no ``cryptography``),
because the edge needs the token's CA hash before it needs any key material.
"""
