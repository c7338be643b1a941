"""Network allocation for VMs: MAC addresses (macaddr), IPv4 choice and dnsmasq's files (ipam),
and the DHCP server's reservation directory (dhcp_store)."""
