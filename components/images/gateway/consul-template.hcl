# consul-template settings for the gateway. The Consul address and the template paths are
# passed by entrypoint.sh (-consul-addr, -template) so that the same file runs everywhere.
log_level = "warn"

consul {
  retry {
    enabled     = true
    attempts    = 0        # retry forever: Consul down must never stop the gateway
    backoff     = "250ms"
    max_backoff = "5s"
  }
  transport {
    # One blocking query per routed service; do not cap them per host.
    max_conns_per_host      = 0
    max_idle_conns_per_host = 1000
  }
}

# Render on the first change, but coalesce bursts (a deploy of many containers): wait at least
# 5ms of quiet, at most 200ms. An instance change is applied without a reload (runtime-apply.sh),
# and changes that arrive while one is applied are rendered together afterwards.
wait {
  min = "5ms"
  max = "200ms"
}

# Stale reads let any Consul server answer, so the gateway keeps up when a leader is lost.
max_stale = "10s"

kill_signal = "SIGTERM"
