#!/bin/sh
# Compose path only: copy this host's layers (mounted read-only at /lab/layers/NN-name)
# into / the way lab/manager.py builds an overlay upper dir, then run the common init.
set -eu
for layer in /lab/layers/*; do
  for item in "$layer"/*; do
    if [ -d "$item" ]; then cp -a "$item" /; else mkdir -p /usr/local/lib/lab && cp -a "$item" /usr/local/lib/lab/; fi
  done
done
# The namespace lab uses lab-PKI certificates; here a plain self-signed one stands in.
if grep -q ssl_certificate /etc/nginx/nginx.conf 2>/dev/null && [ ! -f /etc/nginx/tls/server.crt ]; then
  mkdir -p /etc/nginx/tls
  openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=$LAB_HOST" \
    -keyout /etc/nginx/tls/server.key -out /etc/nginx/tls/server.crt 2>/dev/null
fi
: > /etc/resolv.conf 2>/dev/null || true
exec /usr/bin/tini -- /bin/sh /usr/local/lib/lab/init.sh
