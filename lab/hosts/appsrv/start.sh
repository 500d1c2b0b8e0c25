# lab appsrv: Apache Tomcat 10 (Debian tomcat10) on 8080 from CATALINA_BASE /srv/tomcat, in the foreground
cd /srv/tomcat
for f in catalina.properties context.xml web.xml logging.properties; do cp /etc/tomcat10/$f conf/$f; done
mkdir -p logs temp work
CATALINA_HOME=/usr/share/tomcat10 CATALINA_BASE=/srv/tomcat CATALINA_TMPDIR=/srv/tomcat/temp \
  JAVA_OPTS="-Xmx192m -Djava.awt.headless=true" /usr/share/tomcat10/bin/catalina.sh run >>/var/log/lab/tomcat.log 2>&1 &
