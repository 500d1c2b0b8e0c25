# lab hl7: MLLP listener on 2575 and on 6661, a port HL7 engines also use (nmap names it nothing)
python3 -u /usr/local/lib/lab/mllp_listener.py 2575 6661 >>/var/log/lab/mllp.log 2>&1 &
