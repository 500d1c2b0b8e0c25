# lab research: the research data platform: FHIR, Elasticsearch and Kibana STAND-INS (lab/hosts/_standins), open
python3 -u /usr/local/lib/lab/data_api_standins.py open >>/var/log/lab/standins.log 2>&1 &
