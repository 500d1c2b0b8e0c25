# lab imaging-ws: a radiology reading workstation: TigerVNC Xvnc that asks for nothing on 5900, xrdp on 3389
mkdir -p /tmp/.X11-unix && chmod 1777 /tmp/.X11-unix
# plant vnc-no-auth: SecurityTypes None.  Blacklisting off (TigerVNC blocks an address for 10 s after 5 connections
# that end before authentication): the lab's own repeated probes must not change what a later scan reads.
Xvnc :0 -rfbport 5900 -nolisten tcp -SecurityTypes None -BlacklistThreshold 1000000 -geometry 64x48 -depth 16 >>/var/log/lab/xvnc.log 2>&1 &
xrdp --nodaemon --config /etc/xrdp/xrdp.ini >>/var/log/lab/xrdp.out 2>&1 &
