# New Corefile: restart CoreDNS with it.
coredns_start
