# Restarts CoreDNS.
coredns_start
