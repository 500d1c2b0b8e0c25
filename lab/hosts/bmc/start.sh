# lab bmc: a server's baseboard management controller: ipmi_sim (OpenIPMI) on UDP 623, no console
mkdir -p /var/lib/ipmi_sim
ipmi_sim -c /etc/ipmi/lan.conf -f /etc/ipmi/cmds.emu -s /var/lib/ipmi_sim -n </dev/null >>/var/log/lab/ipmi_sim.log 2>&1 &
