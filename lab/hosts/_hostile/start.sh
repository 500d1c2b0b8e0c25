# lab hostile hosts: the misbehaving services of lab/topology.yaml (hostile_services.py, config by `lab up`)
python3 -u /usr/local/lib/lab/hostile_services.py /usr/local/lib/lab/hostile.json >>/var/log/lab/hostile.log 2>&1 &
