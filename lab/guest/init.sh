#!/bin/busybox sh
# kvmfleet lab guest /init (busybox, PID 1). Everything goes to the serial
# console ttyS0. Markers (one per line, grep-able):
#   KVMFLEET-BOOT kernel=<release> uptime=<s>
#   KVMFLEET-MODULES loaded=<n> failed=<list|none>
#   KVMFLEET-DISK vda=<bytes> label=<first bytes of vda|none>
#   KVMFLEET-IP <addr>                     (from the udhcpc script)
#   KVMFLEET-BURN loops=<n>
#   KVMFLEET-DIRTY rate_mib_s=.. target_mib_s=.. buf_mib=..   (from kvmfleet-dirty)
#   KVMFLEET-STATUS cpus_online=.. cpus_present=.. mem_total_kb=.. mem_free_kb=.. ip=.. cpu_busy_pct=.. uptime=..
# Kernel command line knobs (all optional):
#   kvmfleet.burn=N        N CPU-burning shell loops (default 0)
#   kvmfleet.dirty=M       dirty M MiB of pages per second (default 0 = off)
#   kvmfleet.dirty_buf=B   size of the dirtied buffer in MiB (default 32)
#   kvmfleet.status=S      seconds between status lines (default 3)
#   kvmfleet.hostname=H    hostname, also sent to the DHCP server (default kvmfleet-guest)
#   kvmfleet.ping=A        ping A three times after DHCP, print KVMFLEET-PING
/bin/busybox mkdir -p /proc /sys /dev /tmp /run /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
[ -c /dev/ttyS0 ] && exec </dev/null >/dev/ttyS0 2>&1

BURN=0 DIRTY=0 DIRTY_BUF=32 STATUS=3 HOST=kvmfleet-guest PING=
for w in $(cat /proc/cmdline); do
    case "$w" in
        kvmfleet.burn=*) BURN=${w#*=} ;;
        kvmfleet.dirty=*) DIRTY=${w#*=} ;;
        kvmfleet.dirty_buf=*) DIRTY_BUF=${w#*=} ;;
        kvmfleet.status=*) STATUS=${w#*=} ;;
        kvmfleet.hostname=*) HOST=${w#*=} ;;
        kvmfleet.ping=*) PING=${w#*=} ;;
    esac
done
isnum() { case "$1" in ''|*[!0-9]*) return 1 ;; esac; return 0; }
isnum "$BURN" || BURN=0
isnum "$DIRTY" || DIRTY=0
isnum "$DIRTY_BUF" && [ "$DIRTY_BUF" -gt 0 ] || DIRTY_BUF=32
isnum "$STATUS" && [ "$STATUS" -gt 0 ] || STATUS=3
hostname "$HOST"

read up _ </proc/uptime
echo "KVMFLEET-BOOT kernel=$(uname -r) uptime=$up"

# modules, in dependency order computed at build time from modules.dep
n=0 failed=
while read -r m; do
    [ -n "$m" ] || continue
    if insmod "/lib/modules/$m.ko"; then n=$((n + 1)); else failed="$failed${failed:+,}$m"; fi
done </etc/kvmfleet/modules
echo "KVMFLEET-MODULES loaded=$n failed=${failed:-none}"

# disk
if [ -r /sys/block/vda/size ]; then
    label=$(dd if=/dev/vda bs=512 count=1 2>/dev/null | head -c 64 | tr -cd 'A-Za-z0-9=._:-')
    echo "KVMFLEET-DISK vda=$(( $(cat /sys/block/vda/size) * 512 )) label=${label:-none}"
else
    echo "KVMFLEET-DISK vda=none"
fi

# network: DHCP on eth0 (udhcpc stays in the background to renew)
ip link set lo up
: >/run/kvmfleet-ip
if ip link show eth0 >/dev/null 2>&1; then
    ip link set eth0 up
    udhcpc -i eth0 -s /etc/udhcpc.script -b -t 10 -T 2 -A 3 -x "hostname:$HOST" -F "$HOST" &
else
    echo "KVMFLEET-NET no eth0"
fi

# workloads
i=0
while [ "$i" -lt "$BURN" ]; do
    (while :; do :; done) &
    i=$((i + 1))
done
echo "KVMFLEET-BURN loops=$BURN"
if [ "$DIRTY" -gt 0 ]; then
    /bin/kvmfleet-dirty "$DIRTY" "$DIRTY_BUF" 5 &
fi
echo "KVMFLEET-WORKLOAD burn=$BURN dirty_mib_s=$DIRTY dirty_buf_mib=$DIRTY_BUF"

if [ -n "$PING" ]; then
    (
        j=0
        while [ ! -s /run/kvmfleet-ip ] && [ "$j" -lt 60 ]; do sleep 1; j=$((j + 1)); done
        if ping -c 3 -W 2 "$PING" >/dev/null 2>&1; then r=ok; else r=fail; fi
        echo "KVMFLEET-PING $PING $r"
    ) &
fi

# online CPUs (hotplugged ones arrive offline without udev)
online_cpus() {
    for f in /sys/devices/system/cpu/cpu[0-9]*/online; do
        [ -e "$f" ] || continue
        read v <"$f"
        [ "$v" = 0 ] && echo 1 >"$f" 2>/dev/null
    done
}
# count CPUs in a sysfs cpu list like 0-1,3
count_cpus() {
    c=0
    IFS=, 
    for r in $(cat "$1"); do
        case "$r" in
            *-*) c=$((c + ${r#*-} - ${r%-*} + 1)) ;;
            ?*) c=$((c + 1)) ;;
        esac
    done
    unset IFS
    echo "$c"
}
meminfo() { while read -r k v _; do [ "$k" = "$1:" ] && { echo "$v"; return; }; done </proc/meminfo; }
pb=0 pt=0
tick=0
while :; do
    online_cpus
    if [ $((tick % STATUS)) -eq 0 ]; then
        read -r _ u n s idle io irq sirq st _ </proc/stat
        t=$((u + n + s + idle + io + irq + sirq + st)) b=$((u + n + s + irq + sirq + st))
        busy=0
        [ "$t" -gt "$pt" ] && busy=$(( (b - pb) * 100 / (t - pt) ))
        pb=$b pt=$t
        read -r up _ </proc/uptime
        ip=$(cat /run/kvmfleet-ip 2>/dev/null)
        echo "KVMFLEET-STATUS cpus_online=$(count_cpus /sys/devices/system/cpu/online) cpus_present=$(count_cpus /sys/devices/system/cpu/present) mem_total_kb=$(meminfo MemTotal) mem_free_kb=$(meminfo MemFree) ip=${ip:-none} cpu_busy_pct=$busy uptime=$up"
    fi
    tick=$((tick + 1))
    sleep 1
done
