# lab broker-sec: Mosquitto on 8883, TLS and a password (the twin of ward-broker)
mkdir -p /etc/mosquitto/certs
cp /etc/nginx/tls/server.crt /etc/nginx/tls/server.key /etc/mosquitto/certs/
mosquitto_passwd -b -c /etc/mosquitto/passwd monitor 'Lab#Ward3-Broker-2024'
chown -R mosquitto:mosquitto /etc/mosquitto/certs /etc/mosquitto/passwd
chmod 600 /etc/mosquitto/certs/server.key /etc/mosquitto/passwd
touch /var/log/lab/mosquitto.log && chown mosquitto /var/log/lab/mosquitto.log
mosquitto -d -c /etc/mosquitto/lab.conf
