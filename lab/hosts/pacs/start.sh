# lab pacs: DICOM Q/R SCP on 104 (pynetdicom)
python3 -u /usr/local/lib/lab/pacs_scp.py >>/var/log/lab/pacs.log 2>&1 &
