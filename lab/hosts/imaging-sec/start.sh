# lab imaging-sec: the imaging workstation's twin: VNC only inside TLS with a user and password, no RDP
mkdir -p /tmp/.X11-unix && chmod 1777 /tmp/.X11-unix
useradd -M -s /usr/sbin/nologin radiologist 2>/dev/null || true
# X509Plain: VeNCrypt TLS with the lab CA's certificate for this host, then a user name and password (PAM); blacklisting
# off as on imaging-ws
Xvnc :0 -rfbport 5900 -nolisten tcp -SecurityTypes X509Plain -PlainUsers radiologist -BlacklistThreshold 1000000 \
  -X509Key /etc/nginx/tls/server.key -X509Cert /etc/nginx/tls/server.crt \
  -geometry 64x48 -depth 16 >>/var/log/lab/xvnc.log 2>&1 &
