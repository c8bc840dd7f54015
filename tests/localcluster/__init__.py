"""A whole jfs-milvus cluster on this machine, for the quickstart demo, the chaos suite and the benchmarks.

- `cluster`: the nodes (own address, agent, JuiceFS mount, stand-in Milvus container, net_cls cgroup),
  coordinators, firewall partitions, the write client and the history checker;
- `up` / `down`: bring a whole cluster up from nothing (MariaDB, Redis, a formatted volume, certificates,
  Mishards) and sweep away everything one left behind;
- `faults`: the faults the chaos suite injects; `chaos`: its scenarios and table;
- `demo`: the quickstart; `__main__`: the `scripts/cluster` command line.
"""
