# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Network allocation for VMs: MAC addresses (macaddr), IPv4 choice (ipam), dnsmasq's file
formats (dnsmasq), and the DHCP server's reservation directory (dhcp_store)."""
