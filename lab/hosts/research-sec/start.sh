# lab research-sec: the twin: FHIR (SMART-on-FHIR), Elasticsearch and Kibana STAND-INS that require login
python3 -u /usr/local/lib/lab/data_api_standins.py locked >>/var/log/lab/standins.log 2>&1 &
