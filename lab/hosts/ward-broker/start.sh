# lab ward-broker: Mosquitto on 1883 holding retained ward messages of FAKE patients (plant mqtt-anonymous)
touch /var/log/lab/mosquitto.log && chown mosquitto /var/log/lab/mosquitto.log
mosquitto -d -c /etc/mosquitto/lab.conf
i=0
until mosquitto_pub -h 127.0.0.1 -p 1883 -t lab/ready -n 2>/dev/null; do
  i=$((i+1)); [ $i -gt 100 ] && { echo "mosquitto did not start"; exit 1; }
  sleep 0.1
done
mosquitto_pub -h 127.0.0.1 -p 1883 -q 1 -r -t ward/3/bed/12/vitals \
  -m '{"patient":"FAKEPATIENT Zhang Sanfeng","mrn":"MRN-TEST-0012","hr":72,"spo2":97}'
mosquitto_pub -h 127.0.0.1 -p 1883 -q 1 -r -t ward/3/bed/14/vitals \
  -m '{"patient":"FAKEPATIENT Li Siguang","mrn":"MRN-TEST-0014","hr":88,"spo2":93}'
mosquitto_pub -h 127.0.0.1 -p 1883 -q 1 -r -t nursecall/ward3/room5 \
  -m '{"call":"bed 12","patient":"FAKEPATIENT Zhang Sanfeng","priority":"high"}'
