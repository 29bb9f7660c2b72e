"""A build across a Ray cluster: `safer-toolkit build … --ray ADDRESS`.

The same build, on many machines: the sources are read, checked and hashed by Ray tasks
(`intake`), the items run the build's own per-item code in shard actors (`shard`) while the
fill stays on the driver (`items`), one actor shares every endpoint's concurrency and the
budget between the shards (`gate`), and `session` connects, checks the shared output folder
and ties them into `pipeline.build`. Importing this package imports Ray: the one-process build
never does.
"""

from .session import Cluster, ClusterError, connect

__all__ = ["Cluster", "ClusterError", "connect"]
