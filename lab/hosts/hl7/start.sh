# lab hl7: MLLP listener on 2575
python3 -u /usr/local/lib/lab/mllp_listener.py >>/var/log/lab/mllp.log 2>&1 &
