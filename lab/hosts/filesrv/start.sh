# lab filesrv: smbd on 445 with a share [reports] of fake exported reports (/srv/reports)
mkdir -p /srv/reports/archive /var/log/samba /run/samba
for f in his-export-2026-11.csv lis-results-2026-11.csv pacs-worklist.csv; do
  printf 'patient_id,name\nFAKE-0001,TEST PATIENT\n' >/srv/reports/$f
done
chmod -R a+rX /srv/reports
/usr/sbin/smbd --daemon --configfile=/etc/samba/smb.conf
