"""Console access: one-time console tokens (tokens) and the websocket
console proxy that checks them (proxy).  Agents mint tokens; the proxy,
one process for many hosts, redeems them.  Neither imports compute."""
