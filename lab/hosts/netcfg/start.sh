# lab netcfg: the network team's provisioning server: tftpd-hpa (read-only, chroot /srv/tftp) on UDP 69
# plant tftp-switch-config: /srv/tftp/network-confg, a switch configuration with an enable secret, a password line
# and an SNMP write community
chmod -R a+rX /srv/tftp
in.tftpd --listen --address 0.0.0.0:69 --secure --user tftp /srv/tftp
