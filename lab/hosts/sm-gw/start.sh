# lab sm-gw: minimal ShangMi handshake responder on 443 (not a TLS stack)
python3 -u /usr/local/lib/lab/sm_responder.py >>/var/log/lab/sm_responder.log 2>&1 &
