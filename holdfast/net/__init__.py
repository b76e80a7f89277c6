"""Node-to-node traffic: the cluster CA (:mod:`pki`), mutual TLS (:mod:`tls`), checksummed
message frames (:mod:`frames`), and the internal server and client (:mod:`server`,
:mod:`client`). docs/cluster.md describes it for operators."""
