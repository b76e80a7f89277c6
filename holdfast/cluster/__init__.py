"""The cluster: its layout (authoritative, versioned, in the index engine), the safety
rails every layout change passes, liveness hints from heartbeats, and ``cluster dev``."""
