# Installs the CoreDNS release binary and starts it with the rendered Corefile.
coredns_binary "$(coredns_want)"
coredns_start
