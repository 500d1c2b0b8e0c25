"""A real Apache Tomcat 10 (Debian tomcat10 + tomcat10-admin) for the tests, run in the foreground from a temporary
CATALINA_BASE: one JVM, two <Service>s on two loopback addresses.

- "open": the manager and host-manager apps deployed with a default-style account (tomcat/tomcat, manager-gui),
  TRACE allowed on the connector, directory listings on for the ROOT app, no frame protection.
- "locked": no admin apps, no TRACE, no listing (Tomcat's defaults), a ROOT page only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.loopback import wait_port

CATALINA_HOME = Path("/usr/share/tomcat10")
ADMIN_APPS = Path("/usr/share/tomcat10-admin")

SERVER_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Server port="-1" shutdown="SHUTDOWN">
  <GlobalNamingResources>
    <Resource name="UserDatabase" auth="Container" type="org.apache.catalina.UserDatabase"
              factory="org.apache.catalina.users.MemoryUserDatabaseFactory" pathname="conf/tomcat-users.xml" />
  </GlobalNamingResources>
  <Service name="Open">
    <Connector address="{open}" port="{port}" protocol="HTTP/1.1" allowTrace="true" connectionTimeout="5000" />
    <Engine name="Open" defaultHost="localhost">
      <Realm className="org.apache.catalina.realm.LockOutRealm">
        <Realm className="org.apache.catalina.realm.UserDatabaseRealm" resourceName="UserDatabase"/>
      </Realm>
      <Host name="localhost" appBase="webapps-open" unpackWARs="false" autoDeploy="false" />
    </Engine>
  </Service>
  <Service name="Locked">
    <Connector address="{locked}" port="{port}" protocol="HTTP/1.1" connectionTimeout="5000" />
    <Engine name="Locked" defaultHost="localhost">
      <Host name="localhost" appBase="webapps-locked" unpackWARs="false" autoDeploy="false" />
    </Engine>
  </Service>
</Server>
"""
USERS_XML = """<?xml version="1.0" encoding="UTF-8"?>
<tomcat-users xmlns="http://tomcat.apache.org/xml" version="1.0">
  <role rolename="manager-gui"/><role rolename="admin-gui"/>
  <user username="tomcat" password="tomcat" roles="manager-gui,admin-gui"/>
</tomcat-users>
"""
LISTING_WEB_XML = """<?xml version="1.0" encoding="UTF-8"?>
<web-app xmlns="https://jakarta.ee/xml/ns/jakartaee" version="6.0">
  <servlet>
    <servlet-name>default</servlet-name>
    <servlet-class>org.apache.catalina.servlets.DefaultServlet</servlet-class>
    <init-param><param-name>listings</param-name><param-value>true</param-value></init-param>
    <load-on-startup>1</load-on-startup>
  </servlet>
  <servlet-mapping><servlet-name>default</servlet-name><url-pattern>/</url-pattern></servlet-mapping>
</web-app>
"""


def start_tomcat(tmp: Path, open_address: str, locked_address: str, port: int) -> subprocess.Popen:
    base = tmp / "catalina-base"
    conf = base / "conf"
    conf.mkdir(parents=True)
    for name in ("catalina.properties", "context.xml", "web.xml", "logging.properties"):
        shutil.copy(f"/etc/tomcat10/{name}", conf / name)
    (conf / "server.xml").write_text(SERVER_XML.format(open=open_address, locked=locked_address, port=port))
    (conf / "tomcat-users.xml").write_text(USERS_XML)
    for app in ("manager", "host-manager"):
        d = conf / "Open" / "localhost"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{app}.xml").write_text(f'<Context docBase="{ADMIN_APPS / app}" antiResourceLocking="false" '
                                      'privileged="true" />\n')
    root = base / "webapps-open" / "ROOT"
    (root / "WEB-INF").mkdir(parents=True)
    (root / "WEB-INF" / "web.xml").write_text(LISTING_WEB_XML)
    (root / "his-export-2024.csv").write_text("id,name\n")
    (root / "reports").mkdir()
    locked = base / "webapps-locked" / "ROOT"
    locked.mkdir(parents=True)
    (locked / "index.html").write_text("<html><head><title>LIS</title></head><body>LIS</body></html>\n")
    for d in ("logs", "temp", "work"):
        (base / d).mkdir()
    env = {**os.environ, "CATALINA_HOME": str(CATALINA_HOME), "CATALINA_BASE": str(base),
           "CATALINA_TMPDIR": str(base / "temp"), "JAVA_OPTS": "-Xmx192m -Djava.awt.headless=true"}
    log = open(base / "logs" / "console.log", "wb")   # noqa: SIM115 - kept open for the JVM's lifetime
    p = subprocess.Popen([str(CATALINA_HOME / "bin" / "catalina.sh"), "run"], env=env, stdout=log,
                         stderr=subprocess.STDOUT)
    log.close()
    try:
        wait_port(open_address, port, timeout=60)
        wait_port(locked_address, port, timeout=30)
    except TimeoutError:
        p.kill()
        p.wait()
        raise
    return p
