"""lab dc: set account attributes samba-tool cannot (lastLogonTimestamp, userAccountControl bits), offline in sam.ldb.

stdin: one `user attribute value` per line; a userAccountControl value is OR-ed into the current flags.
"""

import sys

import ldb
from samba.auth import system_session
from samba.param import LoadParm
from samba.samdb import SamDB

base = sys.argv[1]
lp = LoadParm()
lp.load_default()
db = SamDB(url=lp.private_path("sam.ldb"), session_info=system_session(), lp=lp)
for line in sys.stdin.read().splitlines():
    user, attr, value = line.split()
    dn = f"CN={user},CN=Users,{base}"
    if attr == "userAccountControl":
        old = int(db.search(dn, scope=ldb.SCOPE_BASE, attrs=[attr])[0][attr][0])
        value = str(old | int(value, 0))
    db.modify_ldif(f"dn: {dn}\nchangetype: modify\nreplace: {attr}\n{attr}: {value}\n", controls=["relax:0"])
