"""What the agent and the coordinator both need: config schema, secrets, TLS, logging, sd_notify, the /metrics
server, authorization, wire checks, atomic files, the protobuf name maps and the Milvus 1.x facts.

It imports nothing from `agent` or `coordinator`, so each daemon's package ships only its own code and this."""
